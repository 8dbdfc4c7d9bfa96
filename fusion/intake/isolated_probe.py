"""The probe's ONNX Runtime run; in a process of its own for models whose weights lie in a file.

Running the model reads every weight: in the API process those pages, mapped from the weights file, would
count in its memory while the run lasts, a gigabyte for a gigabyte of weights. A child process takes that
instead and is gone afterwards. It runs this file as a script (`python isolated_probe.py request.json`),
so the module imports nothing from fusebox; it prints {"shape": [...]} or {"error": "..."}.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import onnxruntime as ort


def run_session(content: bytes, folder: str | None, feeds: dict[str, np.ndarray], output: str) -> list[int]:
    """The output's shape for `feeds`, one thread; ONNX Runtime's exception if it cannot run the model.

    External data is read from `folder`, mapped rather than copied, and weights are not pre-packed (a copy
    of every weight matrix).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # failures are reported in the rejection, not logged
    options.add_session_config_entry("session.disable_prepacking", "1")
    if folder is not None:
        options.add_session_config_entry("session.model_external_initializers_file_folder_path", folder)
    session = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
    (result,) = session.run([output], feeds)
    return list(result.shape)


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    feeds = {feed["name"]: np.zeros(feed["shape"], dtype=feed["dtype"]) for feed in request["feeds"]}
    with open(request["model"], "rb") as handle:
        content = handle.read()
    try:
        return {"shape": run_session(content, request["folder"], feeds, request["output"])}
    except Exception as error:  # onnxruntime raises pybind classes with no common base besides Exception
        return {"error": str(error)}


if __name__ == "__main__":
    with open(sys.argv[1]) as request:
        print(json.dumps(_answer(json.load(request))))
