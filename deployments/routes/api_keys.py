"""API keys, managed by admins: create (the key is shown once), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Query

from db import api_keys
from db.api_keys import ApiKey
from db.errors import NotFound
from deployments.protocol.api_keys import KeyCreated, KeyRequest
from deployments.routes.common import Served, allowed, errors

router = APIRouter(prefix="/v1/keys", tags=["keys"], dependencies=[allowed("admin")],
                   responses=errors(401, 403, 503))


@router.post("", status_code=201, response_model=KeyCreated, responses=errors(422),
             summary="Create an API key; the answer holds the key, which is not shown again.")
async def create_key(request: KeyRequest, services: Served):
    async with services.db.acquire() as conn:
        record, key = await api_keys.create_key(conn, request.scope, request.name)
    return KeyCreated(**record.model_dump(), key=key)


@router.get("", response_model=list[ApiKey], responses=errors(422), summary="API keys (never the keys themselves).")
async def list_keys(services: Served, include_revoked: bool = Query(default=False)):
    async with services.db.acquire() as conn:
        return await api_keys.list_keys(conn, include_revoked)


@router.delete("/{key_id}", response_model=ApiKey, responses=errors(404, 422),
               summary="Revoke a key: at once on this replica, within TANDEM_AUTH_REFRESH_S on the others.")
async def revoke_key(key_id: int, services: Served):
    async with services.db.acquire() as conn:
        revoked = await api_keys.revoke_key(conn, key_id)
    if revoked is None:
        raise NotFound(f"no API key {key_id}")
    services.keys.forget()
    return revoked
