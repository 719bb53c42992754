"""API keys over real HTTP: scopes, 401 and 403 in the documented shape, keys created and revoked through the admin
routes and through `tandem keys`, stored as digests only, never logged, and the routes that stay open."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from ray import serve

from deployments.app import build_app, serving_host
from tandem.settings import Settings
from tests.conftest import ADMIN_KEY, deploy_ingress

BOOK_QUESTIONS = "/v1/books/questions"  # an inference route that needs no model


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create(http: httpx.Client, scope: str, name: str = "") -> dict:
    r = http.post("/v1/keys", json={"scope": scope, "name": name})
    assert r.status_code == 201, r.text
    return r.json()


def assert_refused(r: httpx.Response, status: int, words: str) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert words in error["message"] and error["param"] == "Authorization", error
    assert error["type"] == ("authentication_error" if status == 401 else "permission_error"), error
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"


def test_routes_need_a_known_key(serve_app: str) -> None:
    with httpx.Client(base_url=serve_app, timeout=60) as anonymous:
        assert_refused(anonymous.get(BOOK_QUESTIONS), 401, "an API key is required")
        assert_refused(anonymous.post("/v1/train", json={"pipeline": "lrurec"}), 401, "an API key is required")
        assert_refused(anonymous.get("/v1/users"), 401, "an API key is required")
        assert_refused(anonymous.get(BOOK_QUESTIONS, headers=bearer("tdm_not-a-key")), 401, "unknown or revoked")
        assert_refused(anonymous.get(BOOK_QUESTIONS, headers={"Authorization": f"Basic {ADMIN_KEY}"}), 401,
                       "an API key is required")
        # Health, readiness, the page and the API's description stay open.
        for path in ("/healthz", "/readyz", "/", "/web/app.js", "/openapi.json", "/v1/metrics/pipelines"):
            assert anonymous.get(path).status_code == 200, path


def test_scopes(http: httpx.Client, serve_app: str) -> None:
    inference = create(http, "inference", "scopes test")
    with httpx.Client(base_url=serve_app, timeout=60, headers=bearer(inference["key"])) as client:
        assert client.get(BOOK_QUESTIONS).status_code == 200
        assert client.post("/v1/keywords", json={"text": "이사화물 통관 예약"}).status_code == 200
        for method, path, body in (("POST", "/v1/train", {"pipeline": "lrurec"}), ("GET", "/v1/train", None),
                                   ("GET", "/v1/users", None), ("POST", "/v1/items", {"items": []}),
                                   ("POST", "/v1/keys", {"scope": "admin"}), ("GET", "/v1/keys", None)):
            r = client.request(method, path, json=body)
            assert_refused(r, 403, "this key's scope is inference; this route needs an admin key")
    # An admin key does what an inference key does, and more.
    admin = create(http, "admin", "scopes test")
    with httpx.Client(base_url=serve_app, timeout=60, headers=bearer(admin["key"])) as client:
        assert client.get(BOOK_QUESTIONS).status_code == 200
        assert client.get("/v1/keys").status_code == 200


def test_create_list_revoke_and_only_digests_are_stored(http: httpx.Client, serve_app: str, pg_url: str) -> None:
    made = create(http, "inference", "revoke test")
    key = made["key"]
    assert key.startswith("tdm_") and made["prefix"] == key[:12] and made["scope"] == "inference"
    listed = http.get("/v1/keys").json()
    mine = [k for k in listed if k["id"] == made["id"]]
    assert mine and "key" not in mine[0] and key not in json.dumps(listed)

    async def stored() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(pg_url)
        try:
            return await conn.fetch("SELECT * FROM api_keys WHERE id = $1", made["id"])
        finally:
            await conn.close()

    (row,) = asyncio.run(stored())
    assert bytes(row["digest"]) == hashlib.sha256(key.encode()).digest()
    assert key not in repr(dict(row))

    with httpx.Client(base_url=serve_app, timeout=60, headers=bearer(key)) as client:
        assert client.get(BOOK_QUESTIONS).status_code == 200
        revoked = http.delete(f"/v1/keys/{made['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text
        assert_refused(client.get(BOOK_QUESTIONS), 401, "unknown or revoked")
    assert made["id"] not in [k["id"] for k in http.get("/v1/keys").json()]
    assert made["id"] in [k["id"] for k in http.get("/v1/keys", params={"include_revoked": True}).json()]
    missing = http.delete("/v1/keys/999999999")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    bad = http.post("/v1/keys", json={"scope": "root"})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "scope", bad.text


def test_keys_from_the_command_line(serve_app: str, settings: Settings, pg_url: str, project_root: Path) -> None:
    env = os.environ | {"DATABASE_URL": pg_url}

    def tandem(*args: str) -> dict | list:
        done = subprocess.run([sys.executable, "-m", "ops.cli", "keys", *args], cwd=project_root, env=env,
                              capture_output=True, text=True, timeout=120, check=True)
        return json.loads(done.stdout)

    made = tandem("create", "--scope", "inference", "--name", "from the CLI")
    assert made["key"].startswith("tdm_") and made["name"] == "from the CLI"
    assert made["id"] in [k["id"] for k in tandem("list")] and made["key"] not in json.dumps(tandem("list"))
    with httpx.Client(base_url=serve_app, timeout=60, headers=bearer(made["key"])) as client:
        assert client.get(BOOK_QUESTIONS).status_code == 200  # a key the replica did not know is looked up at once
        assert tandem("revoke", str(made["id"]))["revoked_at"]
        # Revoked elsewhere than in the replica: it stops working within TANDEM_AUTH_REFRESH_S.
        deadline = time.monotonic() + settings.auth_refresh_s + 30
        while client.get(BOOK_QUESTIONS).status_code != 401:
            assert time.monotonic() < deadline, "a revoked key still works"
            time.sleep(0.5)
    unknown = subprocess.run([sys.executable, "-m", "ops.cli", "keys", "revoke", "999999999"], cwd=project_root,
                             env=env, capture_output=True, text=True, timeout=120)
    assert unknown.returncode != 0 and "no API key 999999999" in unknown.stderr


def test_keys_never_reach_the_logs(http: httpx.Client, serve_app: str) -> None:
    made = create(http, "inference", "log test")
    with httpx.Client(base_url=serve_app, timeout=60, headers=bearer(made["key"])) as client:
        assert client.get(BOOK_QUESTIONS).status_code == 200
        client.post("/v1/keywords", json={})  # a 422: error paths log too
    logs = Path("/tmp/ray/session_latest/logs")
    assert logs.is_dir()
    leaked = [p.name for p in logs.rglob("*") if p.is_file() and (made["key"] in p.read_text(errors="replace")
                                                                  or ADMIN_KEY in p.read_text(errors="replace"))]
    assert not leaked, f"an API key is in the logs: {leaked}"


@pytest.fixture
def open_app(serve_app: str, settings: Settings) -> Iterator[str]:
    yield deploy_ingress(serve_app, "open", settings.model_copy(update={"auth": "off"}))
    serve.delete("open")


def test_auth_off_opens_every_route(open_app: str) -> None:
    with httpx.Client(base_url=open_app, timeout=60) as anonymous:
        assert anonymous.get(BOOK_QUESTIONS).status_code == 200
        assert anonymous.get("/v1/train").status_code == 200


def test_the_builder_checks_where_serve_listens(serve_app: str, settings: Settings) -> None:
    """No keys is allowed here because this Serve listens on loopback; serve_config.yaml's 0.0.0.0 would refuse
    (tests/test_settings.py::test_no_keys_only_on_loopback)."""
    assert serving_host() == settings.host == "127.0.0.1"
    assert type(build_app(settings.model_copy(update={"auth": "off"}))).__name__ == "Application"


def test_the_openapi_document_names_the_scheme(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["api_key"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["api_key"][
            "description"]}
    assert spec["paths"]["/v1/train"]["post"]["security"] == [{"api_key": []}]
    assert {"401", "403"} <= set(spec["paths"]["/v1/train"]["post"]["responses"])
    assert "security" not in spec["paths"]["/readyz"]["get"]
