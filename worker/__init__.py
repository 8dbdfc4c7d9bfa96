"""Celery workers: run fusion jobs with the engine, report progress to the database, deploy the result."""
