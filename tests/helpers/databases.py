"""PostgreSQL databases and Redis databases of a test's own, so that test sessions sharing a machine (and
tests that kill workers) never see each other's rows or queue messages."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"
REDIS_TEST_DBS = range(1, 16)
"""Databases a test stack may claim; 0 is left to whatever else runs on this Redis."""


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    name = f"fusebox_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_redis() -> Iterator[str]:
    """A Redis database no other test session is using (claimed with a lock key), emptied before and after:
    two test sessions on one machine must not take each other's job messages."""
    for number in REDIS_TEST_DBS:
        client = redis.Redis.from_url(f"{REDIS}/{number}")
        if client.set("fusebox-test-claim", str(os.getpid()), nx=True, ex=3 * 3600):
            break
        client.close()
    else:
        raise RuntimeError(f"every Redis database in {REDIS_TEST_DBS} is claimed by another test session")
    client.flushdb()
    client.set("fusebox-test-claim", str(os.getpid()), ex=3 * 3600)
    try:
        yield f"{REDIS}/{number}"
    finally:
        client.flushdb()
        client.close()
