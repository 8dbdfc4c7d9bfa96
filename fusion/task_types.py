"""The kinds of prediction task, in a module of their own: it imports nothing heavy, so that the command
line and the service can name task types without loading torch (fusion/tasks.py holds their losses)."""

from __future__ import annotations

from enum import StrEnum


class TaskType(StrEnum):
    BINARY = "binary"
    REGRESSION = "regression"
    MULTICLASS = "multiclass"
