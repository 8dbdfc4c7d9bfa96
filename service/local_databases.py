"""PostgreSQL and Redis databases of a local stack's own (tests and benches), so that stacks sharing a machine
(and tests that kill workers) never see each other's rows or queue messages."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"
REDIS_STACK_DBS = range(1, 16)
"""Databases a local stack may claim; 0 is left to whatever else runs on this Redis."""
REDIS_CLAIM = "fusebox-test-claim"


@contextmanager
def fresh_postgres(prefix: str = "fusebox_test") -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_redis(claim_s: int = 3 * 3600) -> Iterator[str]:
    """A Redis database no other stack is using (claimed with a lock key for `claim_s`), emptied before and
    after: two test sessions or benches on one machine must not take each other's job messages."""
    for number in REDIS_STACK_DBS:
        client = redis.Redis.from_url(f"{REDIS}/{number}")
        if client.set(REDIS_CLAIM, str(os.getpid()), nx=True, ex=claim_s):
            break
        client.close()
    else:
        raise RuntimeError(f"every Redis database in {REDIS_STACK_DBS} is claimed by another test session or bench")
    client.flushdb()
    client.set(REDIS_CLAIM, str(os.getpid()), ex=claim_s)
    try:
        yield f"{REDIS}/{number}"
    finally:
        client.flushdb()
        client.close()
