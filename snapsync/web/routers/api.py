"""The JSON API for scripts: the same control-plane calls and the same authorization as
the pages (bearer token from ``snapsync users token``). Bodies are the control plane's own
models (``SnapshotSettings``, ``SyncGroup``); an ``account_id`` or ``group_id`` in a body that
differs from the path is answered like any other account's id: 404."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from snapsync.control import (data_sync, destinations, moves, notifications, recipients, snapshot_settings,
                              sync_groups, sync_tasks)
from snapsync.schemas.control import SnapshotSettings, SyncGroup
from snapsync.web.auth import Scope, reader, rep
from snapsync.web.routers.audit import query as audit_query
from snapsync.web.routers.sync import group_of

router = APIRouter(prefix="/api/accounts/{account_id}")


class GroupChange(BaseModel):
    """A group as stored, and its initial copy: ``{target: task id}`` of the copies queued for the
    worker (``GET /api/accounts/{id}/sync-tasks`` shows their outcome)."""

    group: SyncGroup
    initial_copy: dict[int, int] = {}


def _same_account(scope: Scope, body_account: int) -> None:
    if body_account != scope.account_id:
        raise HTTPException(404)


@router.get("/snapshot-settings", tags=["snapshots"], response_model=Optional[SnapshotSettings])
def get_snapshot_settings(scope: Scope = Depends(reader)):
    """The account's Recurring Data Snapshots settings (null when never configured), without the
    customers that moved to another account since they were selected."""
    return moves.recheck_snapshots(scope.settings, scope.account_id)[0]


@router.put("/snapshot-settings", tags=["snapshots"], response_model=SnapshotSettings)
def put_snapshot_settings(body: SnapshotSettings, scope: Scope = Depends(rep)):
    """Create or replace the settings (validated and audited by the control plane)."""
    _same_account(scope, body.account_id)
    return snapshot_settings.configure(scope.settings, scope.account_id, who=scope.who, tenant_view=True,
                                       **body.model_dump(exclude={"account_id"}))


class EncryptionKey(BaseModel):
    """Whom the account's packages are encrypted to: shown by fingerprint, never the key."""

    kind: str
    fingerprint: str
    expires: Optional[str] = None
    uids: list[str] = []


class EncryptionKeyIn(BaseModel):
    key: str  # an armored OpenPGP public key, or an age recipient (age1...)


class SftpDestination(BaseModel):
    """Where the nightly deliveries are uploaded: the address, the pinned host key's
    fingerprint, and snapsync's public login key for the drop's authorized keys."""

    url: str
    host_key: str
    public_key: str


class SftpDestinationIn(BaseModel):
    url: str  # sftp://user@host[:port]/path (no password)
    host_key: str  # the server's public host key line, as ssh-keyscan prints it


@router.get("/encryption-key", tags=["snapshots"], response_model=Optional[EncryptionKey])
def get_encryption_key(scope: Scope = Depends(reader)):
    """The key every package of the account is encrypted to (null: delivered unencrypted)."""
    key = recipients.get(scope.settings, scope.account_id)
    return key.public() if key else None


@router.put("/encryption-key", tags=["snapshots"], response_model=EncryptionKey)
def put_encryption_key(body: EncryptionKeyIn, scope: Scope = Depends(rep)):
    """Encrypt every package to this key from now on (refused, 422, when malformed, expired,
    revoked or unable to encrypt)."""
    return recipients.set_key(scope.settings, scope.account_id, body.key, who=scope.who).public()


@router.delete("/encryption-key", tags=["snapshots"], status_code=204)
def delete_encryption_key(scope: Scope = Depends(rep)):
    recipients.clear(scope.settings, scope.account_id, who=scope.who)


@router.get("/sftp-destination", tags=["snapshots"], response_model=Optional[SftpDestination])
def get_sftp_destination(scope: Scope = Depends(reader)):
    dest = destinations.get(scope.settings, scope.account_id)
    return dest.public() if dest else None


@router.put("/sftp-destination", tags=["snapshots"], response_model=SftpDestination)
def put_sftp_destination(body: SftpDestinationIn, scope: Scope = Depends(rep)):
    """Upload each nightly delivery to this drop as well (snapsync makes the login key)."""
    return destinations.set_sftp(scope.settings, scope.account_id, body.url, body.host_key, who=scope.who).public()


@router.delete("/sftp-destination", tags=["snapshots"], status_code=204)
def delete_sftp_destination(scope: Scope = Depends(rep)):
    destinations.clear(scope.settings, scope.account_id, who=scope.who)


@router.get("/sync-groups", tags=["data sync"], response_model=list[SyncGroup])
def list_sync_groups(scope: Scope = Depends(reader)):
    moves.recheck_groups_of(scope.settings, scope.account_id)
    return sync_groups.load_groups_for(scope.settings, scope.account_id)


@router.post("/sync-groups", tags=["data sync"], response_model=GroupChange, status_code=201)
def create_sync_group(body: SyncGroup, scope: Scope = Depends(rep)):
    """Add a group; when the account's Data Sync is enabled its initial copy is queued for the worker."""
    _same_account(scope, body.account_id)
    group, copied = data_sync.create_group(scope.settings, body.source_customer, body.targets, body.categories,
                                           body.mode, account_id=scope.account_id, who=scope.who)
    return GroupChange(group=group, initial_copy=copied)


@router.get("/sync-groups/{group_id}", tags=["data sync"], response_model=SyncGroup)
async def get_sync_group(group: SyncGroup = Depends(group_of(reader))):
    return group


@router.put("/sync-groups/{group_id}", tags=["data sync"], response_model=GroupChange)
def put_sync_group(body: SyncGroup, scope: Scope = Depends(rep), group: SyncGroup = Depends(group_of(rep))):
    """Change a group's sync-from and sync-to customers, data options or mode; new targets
    (all of them when the sync-from customer changes) get the initial copy."""
    _same_account(scope, body.account_id)
    if body.group_id is not None and body.group_id != group.group_id:
        raise HTTPException(404)
    _before, after, copied = data_sync.change_group(
        scope.settings, group.group_id, source=body.source_customer, targets=body.targets,
        categories=body.categories, mode=body.mode, account_id=scope.account_id, who=scope.who)
    return GroupChange(group=after, initial_copy=copied)


@router.delete("/sync-groups/{group_id}", tags=["data sync"], response_model=SyncGroup)
def delete_sync_group(scope: Scope = Depends(rep), group: SyncGroup = Depends(group_of(rep))):
    """Delete a group (items already copied stay). Returns the deleted group."""
    return sync_groups.delete_group(scope.settings, group.group_id, account_id=scope.account_id, who=scope.who)


@router.get("/sync-tasks", tags=["data sync"], response_model=list[dict[str, Any]])
def list_sync_tasks(limit: int = Query(50, ge=1, le=500), scope: Scope = Depends(reader)):
    """The account's newest Data Sync copies and undos (made by the worker), with their outcome."""
    return sync_tasks.account_tasks(scope.settings, scope.account_id, limit)


@router.get("/audit", tags=["audit"], response_model=list[dict[str, Any]])
async def get_audit(entity: str = "", user: str = Query("", description="Who acted (an e-mail)."),
                    since: str = Query("", description="First New York day (YYYY-MM-DD)."),
                    until: str = Query("", description="Last New York day (YYYY-MM-DD)."),
                    limit: int = Query(200, ge=1, le=1000), scope: Scope = Depends(reader)):
    """The account's audit history, newest first."""
    return await run_in_threadpool(audit_query, scope, entity, user, since, until, limit)


@router.get("/notifications", tags=["messages"], response_model=list[dict[str, Any]])
def get_notifications(unread: bool = False, limit: int = Query(100, ge=1, le=1000), scope: Scope = Depends(reader)):
    """The account's messages, newest first, with whether the caller has read each."""
    return notifications.for_user(scope.settings, scope.account_id, scope.user.user_id, unread_only=unread,
                                  limit=limit)
