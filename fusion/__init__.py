"""fusebox's fusion engine: fuse trained single-task ONNX models into one multi-task model.

A plain library: no web, no database, no queue.

Torch's OpenMP threads sleep while they wait (OMP_WAIT_POLICY=PASSIVE) instead of spinning, in every
process that trains with the engine (the worker, the command line, the benches): a spinning thread whose
partner lost its CPU to another process burns its own time slice waiting, and on shared hosts a 2-thread
training step ran 14x slower than with sleeping threads beside two busy processes, 6x slower already with
the host's other work alone, and MMoE 14x slower on a loaded host. OpenMP reads the policy once, when
torch loads it, so it is set here, before any engine module imports torch; an operator's own setting wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
