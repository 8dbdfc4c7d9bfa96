"""Celery workers: run fusion jobs with the engine, report progress to the database, deploy the result.

The engine is imported first: it sets torch's OpenMP wait policy (fusion/__init__.py), which OpenMP reads
once, when torch loads.
"""

import fusion  # noqa: F401
