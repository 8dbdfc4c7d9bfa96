"""Celery workers: run fusion jobs with the engine, report progress to the database, deploy the result.

Torch's OpenMP threads sleep while they wait (OMP_WAIT_POLICY=PASSIVE) instead of spinning: a spinning
thread whose partner lost its CPU to another process burns its own time slice waiting, and on shared hosts
a 2-thread training step ran 14x slower than with sleeping threads beside two busy processes, and 6x
slower already with the host's other work alone.
OpenMP reads the policy once, when torch loads it, so it is set here, before any worker module imports
torch; an operator's own setting wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
