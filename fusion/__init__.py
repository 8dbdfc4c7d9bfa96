"""fusebox's fusion engine: fuse trained single-task ONNX models into one multi-task model.

A plain library: no web, no database, no queue.
"""
