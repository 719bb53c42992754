"""The ingestion API over real HTTP against the session's PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import httpx
import pytest

from tandem.settings import Settings
from tests.conftest import AUTH, deploy_ingress


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def count(pg_url: str, sql: str, *args) -> int:
    async def go() -> int:
        conn = await asyncpg.connect(pg_url)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


def interactions_of(pg_url: str, users: list[str]) -> int:
    return count(
        pg_url,
        "SELECT count(*) FROM interactions x JOIN users u ON u.id = x.user_id WHERE u.external_id = ANY($1)",
        users,
    )


@pytest.fixture
def people(http: httpx.Client) -> tuple[list[str], list[str]]:
    users, items = [uid("u") for _ in range(3)], [uid("i") for _ in range(5)]
    assert (
        http.post("/v1/users", json={"users": [{"external_id": u, "job": "engineer"} for u in users]}).status_code
        == 200
    )
    r = http.post("/v1/items", json={"items": [{"external_id": i, "title": f"Title {i}"} for i in items]})
    assert r.json()["created"] == 5
    return users, items


RESOURCES = [
    (
        "users",
        lambda x: {
            "external_id": x,
            "sex": "F",
            "job": "teacher",
            "married": False,
            "style": "casual",
            "attributes": {"age": 31},
        },
        {"job": "nurse"},
    ),
    (
        "items",
        lambda x: {"external_id": x, "title": "이사화물 안내", "style": "formal", "attributes": {"genres": ["a"]}},
        {"title": "새 제목"},
    ),
    (
        "books",
        lambda x: {
            "external_id": x,
            "title": "트렌드 코리아 2019",
            "author": "김난도",
            "categories": ["경제", "트렌드"],
            "rating": 9.1,
            "review_count": 10,
            "pages": 400,
            "price": 15300,
        },
        {"categories": ["경제"]},
    ),
    (
        "documents",
        lambda x: {
            "external_id": x,
            "title": "이사화물 통관",
            "source": "관세청",
            "text": "첫 문단입니다.\n\n둘째 문단입니다.",
        },
        {"text": "바뀐 문단입니다."},
    ),
]


@pytest.mark.parametrize("resource,make,change", RESOURCES, ids=[r[0] for r in RESOURCES])
def test_upsert_is_keyed_on_external_id(http: httpx.Client, resource: str, make, change: dict) -> None:
    a, b = uid(resource), uid(resource)
    first = http.post(f"/v1/{resource}", json={resource: [make(a), make(b)]})
    assert first.status_code == 200, first.text
    assert first.json() == {"received": 2, "created": 2, "updated": 0, "unchanged": 0}
    again = http.post(f"/v1/{resource}", json={resource: [make(a), make(b)]}).json()
    assert again == {"received": 2, "created": 0, "updated": 0, "unchanged": 2}
    stored = http.get(f"/v1/{resource}/{a}").json()
    changed = http.post(f"/v1/{resource}", json={resource: [{**make(a), **change}]}).json()
    assert changed == {"received": 1, "created": 0, "updated": 1, "unchanged": 0}
    updated = http.get(f"/v1/{resource}/{a}").json()
    assert updated["updated_at"] > stored["updated_at"] and updated["created_at"] == stored["created_at"]
    for field, value in change.items():
        if field == "text":
            assert updated["passages"] == [value]
        else:
            assert updated[field] == value
    listed = http.get(f"/v1/{resource}", params={"after": min(a, b)[:-1], "limit": 1000}).json()
    assert {a, b} <= {r["external_id"] for r in listed}
    missing = http.get(f"/v1/{resource}/{uid('missing')}")
    assert missing.status_code == 404 and "missing-" in missing.json()["error"]["message"]


# Records the request schema admits but PostgreSQL would refuse, each placed third in a batch of good ones.
SPOILED = [
    ("users", {"job": "nurse\x00"}, "job", "NUL"),
    ("users", {"attributes": {"age": float("nan")}}, "attributes", "finite"),
    ("items", {"attributes": {"note\x00": 1}}, "attributes", "NUL"),
    ("books", {"pages": 2**31}, "pages", "2147483647"),
    ("books", {"categories": ["경제", "\x00"]}, "categories", "NUL"),
    ("documents", {"text": "첫 문단\x00입니다."}, "text", "NUL"),
]


@pytest.mark.parametrize("resource,spoil,field,says", SPOILED, ids=[f"{r[0]}.{r[2]}" for r in SPOILED])
def test_a_record_the_database_would_refuse_spoils_its_batch(http: httpx.Client, resource: str, spoil: dict,
                                                             field: str, says: str) -> None:
    make = next(m for name, m, _ in RESOURCES if name == resource)
    ids = [uid(resource) for _ in range(5)]
    batch = [make(x) for x in ids]
    batch[2] |= spoil
    # Python's own encoder, as some clients do: it writes NaN, which strict JSON encoders refuse to.
    r = http.post(f"/v1/{resource}", content=json.dumps({resource: batch}),
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"] == f"{resource}.2.{field}" and says in error["message"], error
    assert all(http.get(f"/v1/{resource}/{x}").status_code == 404 for x in ids)  # nothing written


def test_a_spoiled_survey_spoils_its_batch(http: httpx.Client, people) -> None:
    users, _ = people
    surveys = [{"user_id": u, "kind": "profile", "answers": {"job": "teacher"}} for u in users]
    surveys[1]["answers"] = {"job": "teacher", "note": "a\x00b"}
    r = http.post("/v1/surveys", json={"surveys": surveys})
    assert r.status_code == 422 and r.json()["error"]["param"] == "surveys.1.answers", r.text
    assert all(http.get("/v1/surveys", params={"user_id": u}).json() == [] for u in users)


def test_document_text_becomes_passages(http: httpx.Client) -> None:
    d = uid("doc")
    http.post("/v1/documents", json={"documents": [RESOURCES[3][1](d)]})
    assert http.get(f"/v1/documents/{d}").json()["passages"] == ["첫 문단입니다.", "둘째 문단입니다."]
    both = http.post(
        "/v1/documents", json={"documents": [{"external_id": d, "title": "t", "text": "x", "passages": ["y"]}]}
    )
    assert both.status_code == 422 and "exactly one of `text` or `passages`" in both.json()["error"]["message"]


def test_interactions_round_trip_in_time_order(http: httpx.Client, people, pg_url: str) -> None:
    users, items = people
    batch = [
        {
            "user_id": users[0],
            "item_id": items[2],
            "rating": 4,
            "timestamp": "2024-03-01T00:00:00Z",
            "comment": "좋아요",
        },
        {"user_id": users[0], "item_id": items[0], "rating": 5, "timestamp": 1_600_000_000},
        {"user_id": users[0], "item_id": items[1], "timestamp": "2023-01-01T12:00:00"},
    ]
    r = http.post("/v1/interactions", json={"interactions": batch})
    assert r.json() == {"received": 3, "inserted": 3, "duplicates": 0}
    history = http.get("/v1/interactions", params={"user_id": users[0]}).json()
    assert [h["item_id"] for h in history] == [items[0], items[1], items[2]]
    assert history[2]["comment"] == "좋아요" and history[1]["rating"] is None
    again = http.post("/v1/interactions", json={"interactions": batch}).json()
    assert again == {"received": 3, "inserted": 0, "duplicates": 3}
    assert interactions_of(pg_url, users) == 3


def test_unknown_ids_reject_the_whole_batch_naming_them(http: httpx.Client, people, pg_url: str) -> None:
    users, items = people
    ghost = uid("ghost")
    batch = [
        {"user_id": users[1], "item_id": items[0], "timestamp": 1},
        {"user_id": ghost, "item_id": items[0], "timestamp": 2},
    ]
    r = http.post("/v1/interactions", json={"interactions": batch})
    assert r.status_code == 404
    assert ghost in r.json()["error"]["message"] and r.json()["error"]["param"] == "user_id"
    bad_item = http.post(
        "/v1/interactions", json={"interactions": [{"user_id": users[1], "item_id": "nope-item", "timestamp": 1}]}
    )
    assert bad_item.status_code == 404 and "nope-item" in bad_item.json()["error"]["message"]
    assert interactions_of(pg_url, [users[1]]) == 0


def test_one_bad_row_writes_nothing_and_is_named(http: httpx.Client, people, pg_url: str) -> None:
    users, items = people
    rows = [{"user_id": users[2], "item_id": items[i], "timestamp": i} for i in range(5)]
    rows[3]["rating"] = 11
    r = http.post("/v1/interactions", json={"interactions": rows})
    assert r.status_code == 422
    assert (
        r.json()["error"]["param"] == "interactions.3.rating"
        and "less than or equal to 10" in r.json()["error"]["message"]
    )
    assert interactions_of(pg_url, [users[2]]) == 0


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/v1/users", {"users": [{"external_id": ""}]}, "users.0.external_id"),
        ("/v1/users", {"users": []}, "users"),
        ("/v1/users", {"users": [{"external_id": "x", "married": "perhaps"}]}, "users.0.married"),
        ("/v1/users", {"users": [{"external_id": "x", "shoe_size": 44}]}, "users.0.shoe_size"),
        ("/v1/items", {"items": [{"external_id": "x"}]}, "items.0.title"),
        (
            "/v1/interactions",
            {"interactions": [{"user_id": "u", "item_id": "i", "timestamp": "soon"}]},
            "interactions.0.timestamp",
        ),
        ("/v1/surveys", {"surveys": [{"user_id": "u", "kind": "mood", "answers": {"a": 1}}]}, "surveys.0.kind"),
        ("/v1/books", {"books": [{"external_id": "b", "title": "t", "pages": 0}]}, "books.0.pages"),
        ("/v1/documents", {"documents": [{"external_id": "d", "title": "t", "text": "\n\n"}]}, "documents.0"),
    ],
)
def test_malformed_input_is_a_422_naming_the_field(http: httpx.Client, path: str, body: dict, field: str) -> None:
    r = http.post(path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == field
    assert r.json()["error"]["message"].startswith(field)


def test_batches_over_ten_thousand_are_refused(http: httpx.Client) -> None:
    rows = [{"user_id": "u", "item_id": "i", "timestamp": n} for n in range(10_001)]
    r = http.post("/v1/interactions", json={"interactions": rows})
    assert r.status_code == 422 and "at most 10000" in r.json()["error"]["message"]


def test_oversized_body_is_a_413(http: httpx.Client) -> None:
    blob = "x" * (17 * 2**20)
    r = http.post("/v1/users", json={"users": [{"external_id": "big", "attributes": {"blob": blob}}]})
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
    assert http.get("/v1/users/big").status_code == 404


def test_the_body_limit_follows_its_setting(serve_app: str, settings: Settings) -> None:
    """TANDEM_MAX_BODY_MIB reaches the serving app: an ingress with a 4 KiB limit refuses 8 KiB and takes 1 KiB."""
    from ray import serve

    url = deploy_ingress(serve_app, "small-bodies", settings.model_copy(update={"max_body_mib": 4 / 1024}))
    try:
        big = f"big-{uuid.uuid4().hex[:8]}"
        r = httpx.post(f"{url}/v1/users", json={"users": [{"external_id": big, "attributes": {"blob": "x" * 8192}}]},
                       timeout=60, headers=AUTH)
        assert r.status_code == 413 and "4096 bytes" in r.json()["error"]["message"], r.text
        small = {"users": [{"external_id": f"small-{uuid.uuid4().hex[:8]}", "attributes": {"blob": "x" * 1024}}]}
        assert httpx.post(f"{url}/v1/users", json=small, timeout=60, headers=AUTH).status_code == 200
        assert httpx.get(f"{url}/v1/users/{big}", timeout=60, headers=AUTH).status_code == 404
    finally:
        serve.delete("small-bodies")


def test_idempotency_key_replays_and_guards(http: httpx.Client, people, pg_url: str) -> None:
    users, items = people
    key = uid("key")
    body = {"interactions": [{"user_id": users[1], "item_id": items[4], "timestamp": 42}]}
    first = http.post("/v1/interactions", json=body, headers={"Idempotency-Key": key})
    assert first.json() == {"received": 1, "inserted": 1, "duplicates": 0}
    replay = http.post("/v1/interactions", json=body, headers={"Idempotency-Key": key})
    assert replay.status_code == 200 and replay.json() == first.json()
    assert replay.headers["Idempotency-Replayed"] == "true"
    assert interactions_of(pg_url, [users[1]]) == 1
    other = {"interactions": [{"user_id": users[1], "item_id": items[3], "timestamp": 43}]}
    clash = http.post("/v1/interactions", json=other, headers={"Idempotency-Key": key})
    assert clash.status_code == 409 and key in clash.json()["error"]["message"]
    assert interactions_of(pg_url, [users[1]]) == 1


def test_failed_batch_does_not_burn_its_idempotency_key(http: httpx.Client, people, pg_url: str) -> None:
    users, items = people
    key = uid("key")
    ghost = uid("ghost")
    http.post(
        "/v1/interactions",
        json={"interactions": [{"user_id": ghost, "item_id": items[0], "timestamp": 1}]},
        headers={"Idempotency-Key": key},
    )
    assert http.post("/v1/users", json={"users": [{"external_id": ghost}]}).status_code == 200
    retry = http.post(
        "/v1/interactions",
        json={"interactions": [{"user_id": ghost, "item_id": items[0], "timestamp": 1}]},
        headers={"Idempotency-Key": key},
    )
    assert retry.json()["inserted"] == 1


def test_surveys_are_stored_per_user(http: httpx.Client, people) -> None:
    users, _ = people
    answers = {"mood": "지침", "effect": "위로", "job": "개발자", "situation": "출퇴근", "depth": "가볍게"}
    r = http.post(
        "/v1/surveys",
        json={
            "surveys": [
                {"user_id": users[0], "kind": "book_emotion", "answers": answers},
                {"user_id": users[0], "kind": "profile", "answers": {"style": "캐주얼"}},
            ]
        },
    )
    assert r.json() == {"received": 2, "inserted": 2}
    listed = http.get("/v1/surveys", params={"user_id": users[0], "kind": "book_emotion"}).json()
    assert [s["answers"] for s in listed] == [answers]
    ghost = http.post(
        "/v1/surveys", json={"surveys": [{"user_id": "nobody-here", "kind": "profile", "answers": {"a": 1}}]}
    )
    assert ghost.status_code == 404 and "nobody-here" in ghost.json()["error"]["message"]


def test_fifty_concurrent_clients_write_exactly_ten_thousand_rows(serve_app: str, pg_url: str) -> None:
    clients, per_client, batch = 50, 200, 50
    users, items = [uid("cu") for _ in range(clients)], [uid("ci") for _ in range(20)]
    with httpx.Client(base_url=serve_app, timeout=60, headers=AUTH) as c:
        c.post("/v1/users", json={"users": [{"external_id": u} for u in users]}).raise_for_status()
        c.post("/v1/items", json={"items": [{"external_id": i, "title": i} for i in items]}).raise_for_status()

    async def client(user: str, http: httpx.AsyncClient) -> int:
        inserted = 0
        for start in range(0, per_client, batch):
            rows = [
                {"user_id": user, "item_id": items[n % 20], "timestamp": 1_700_000_000 + n, "rating": n % 5}
                for n in range(start, start + batch)
            ]
            r = await http.post("/v1/interactions", json={"interactions": rows})
            assert r.status_code == 200, r.text
            inserted += r.json()["inserted"]
        return inserted

    async def run() -> list[int]:
        async with httpx.AsyncClient(
            base_url=serve_app, timeout=120, limits=httpx.Limits(max_connections=clients), headers=AUTH
        ) as http:
            return await asyncio.gather(*(client(u, http) for u in users))

    assert sum(asyncio.run(run())) == clients * per_client
    assert interactions_of(pg_url, users) == 10_000


def test_openapi_documents_the_ingestion_routes(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    for resource in ("users", "items", "interactions", "surveys", "books", "documents"):
        assert "post" in paths[f"/v1/{resource}"] and "get" in paths[f"/v1/{resource}"]
    assert "413" in paths["/v1/interactions"]["post"]["responses"]
