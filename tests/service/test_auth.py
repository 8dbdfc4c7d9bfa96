"""API keys and tenants over HTTP: every resource route wants a key, health routes don't, keys are kept
only as hashes, revoked keys stop working, and another tenant's resources answer exactly like missing
ones."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from tests.helpers.jobs import CensusJobs
from tests.helpers.stacks import Stack

AUTH_CACHE_S = 2.0
"""The service's default FUSEBOX_AUTH_CACHE_S."""

RESOURCE_ROUTES = [
    ("GET", "/v1/models"),
    ("GET", "/v1/datasets"),
    ("GET", "/v1/fusion-jobs"),
    ("GET", "/v2/models/census"),
    ("POST", "/v2/models/census/infer"),
    ("POST", "/v1/predict/census"),
    ("GET", "/v1/deployments"),
    ("GET", "/v1/deployments/census/versions/1"),
    ("PATCH", "/v1/deployments/census/versions/1"),
]


@pytest.fixture(scope="module")
def owned(pg_stack: Stack, census_jobs: CensusJobs) -> dict[str, str]:
    """A model, a dataset, a finished job and its deployment, all of the tenant `local`: the shared Census
    job's."""
    census = census_jobs.on(pg_stack)
    return {
        "model": census.uploaded.models[census.uploaded.tasks[0]]["id"],
        "dataset": census.uploaded.validation["id"],
        "job": census.job["id"],
        "deployment": census.deployment,
    }


@pytest.mark.parametrize(("method", "path"), RESOURCE_ROUTES)
@pytest.mark.parametrize("key", ["", "fbx_not-a-key"], ids=["no key", "unknown key"])
def test_resource_routes_want_a_valid_key(pg_stack: Stack, method: str, path: str, key: str) -> None:
    with pg_stack.client(api_key=key) as client:
        response = client.request(method, path, json={} if method in ("POST", "PATCH") else None)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    message = response.json()["error" if path.startswith(("/v2", "/v1/predict/")) else "detail"]
    assert ("Authorization: Bearer" in message) if not key else ("not valid" in message)


def test_health_routes_answer_without_a_key(pg_stack: Stack) -> None:
    with pg_stack.client(api_key="") as client:
        for path in ("/v2", "/v2/health/live", "/v2/health/ready"):
            assert client.get(path).status_code == 200, path


def test_another_tenants_resources_answer_like_missing_ones(pg_stack: Stack, owned: dict[str, str]) -> None:
    other = pg_stack.new_tenant()
    missing = str(uuid.uuid4())
    pairs = [
        (f"/v1/models/{owned['model']}", f"/v1/models/{missing}"),
        (f"/v1/datasets/{owned['dataset']}", f"/v1/datasets/{missing}"),
        (f"/v1/fusion-jobs/{owned['job']}", f"/v1/fusion-jobs/{missing}"),
        (f"/v1/fusion-jobs/{owned['job']}/model", f"/v1/fusion-jobs/{missing}/model"),
        (f"/v2/models/{owned['deployment']}", "/v2/models/never_deployed"),
        (f"/v2/models/{owned['deployment']}/versions/1/ready", "/v2/models/never_deployed/versions/1/ready"),
        (f"/v1/deployments/{owned['deployment']}/versions/1", "/v1/deployments/never_deployed/versions/1"),
    ]
    with pg_stack.client(api_key=other) as client:
        for theirs, nobodys in pairs:
            foreign, absent = client.get(theirs), client.get(nobodys)
            assert foreign.status_code == absent.status_code == 404, (theirs, foreign.text)
            names = (owned["model"], owned["dataset"], owned["job"], owned["deployment"])
            assert _without(foreign.text, names) == _without(absent.text, (missing, "never_deployed"))
        for listing in ("/v1/models", "/v1/datasets", "/v1/fusion-jobs", "/v1/deployments"):
            assert client.get(listing).json()["items"] == [], listing
        batching = f"/v1/deployments/{owned['deployment']}/versions/1"
        assert client.patch(batching, json={"max_batch_size": 8}).status_code == 404
        assert client.delete(f"/v1/models/{owned['model']}").status_code == 404
        assert client.post(f"/v1/fusion-jobs/{owned['job']}/cancel").status_code == 404
        record = {"records": [{"age": 0.5}]}
        assert client.post(f"/v1/predict/{owned['deployment']}", json=record).status_code == 404
    with pg_stack.client() as client:
        assert client.get(f"/v1/models/{owned['model']}").status_code == 200, "the foreign DELETE removed it"
        assert client.get(batching).json()["max_batch_size"] is None, "the foreign PATCH changed the batching"


def _without(text: str, names: tuple[str, ...]) -> str:
    for name in names:
        text = text.replace(name, "<name>")
    return text


def test_a_revoked_key_stops_working_within_the_auth_cache_time(pg_stack: Stack) -> None:
    key = pg_stack.new_tenant()
    with pg_stack.client(api_key=key) as client:
        assert client.get("/v1/models").status_code == 200
        pg_stack.admin("revoke-key", key[:12])
        revoked = time.monotonic()
        while (response := client.get("/v1/models")).status_code == 200:
            assert time.monotonic() - revoked < AUTH_CACHE_S + 1, "the revoked key still works"
            time.sleep(0.1)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_keys_are_stored_only_as_hashes(pg_stack: Stack) -> None:
    key = pg_stack.new_tenant()
    with psycopg.connect(pg_stack.env["DATABASE_URL"]) as connection:
        rows = connection.execute("SELECT * FROM api_keys").fetchall()
    stored = " ".join(str(value) for row in rows for value in row)
    assert key not in stored and pg_stack.api_key not in stored
    assert key[:12] in stored  # the printed prefix, which names the key in `fusebox admin list-keys`
