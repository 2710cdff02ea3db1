"""The JSON API of Data Copy between accounts and of undo in Data Sync: the same control-plane
calls, the same authorization and the same answers as the pages (a copy or an application of
another account is "not found"). Copies and undos are made by the worker: a route that
queues one waits up to ``wait`` seconds for it and answers its outcome (202 while queued)."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from snapsync.control import data_copy, sync_history, sync_tasks, sync_undo
from snapsync.control.data_copy import DataCopy
from snapsync.schemas.control import DataCopyRequest
from snapsync.web.auth import Scope, reader, rep
from snapsync.web.routers.copies import copy_of
from snapsync.web.routers.sync import application_of

router = APIRouter(prefix="/api/accounts/{account_id}")

WaitQuery = Query(10.0, ge=0, le=60, description="Seconds to wait for the worker to make it.")


class Approval(BaseModel):
    """The receiving account's approval: which of its customers receives the copy (default:
    the one the request names)."""

    model_config = ConfigDict(extra="forbid")
    target_customer: Optional[int] = Field(None, gt=0)


class UndoRequest(BaseModel):
    """``force``: undo even though items changed after the application (their later edits are
    lost). Without it an undo that would lose edits is answered 409 with the items."""

    model_config = ConfigDict(extra="forbid")
    force: bool = False


def _outcome(settings, task_id: int, wait: float) -> Any:
    """A queued task's answer: 200 done, 202 still queued, 409 refused with the items changed
    since (kept), 422 refused for another reason."""
    task = sync_tasks.wait_for(settings, [task_id], wait)[0]
    view = task.view()
    if task.state == "done":
        return view
    if task.state == "failed" and task.result and task.result.get("conflicts"):
        return JSONResponse({"detail": task.error, "task_id": task.task_id, "conflicts": task.result["conflicts"]},
                            status_code=409)
    if task.state == "failed":
        return JSONResponse({"detail": task.error, "task_id": task.task_id}, status_code=422)
    return JSONResponse(view, status_code=202)


@router.get("/copies", tags=["data copy"], response_model=dict[str, list[dict[str, Any]]])
def list_copies(scope: Scope = Depends(reader)):
    """The Data Copies the account sent (``sent``) and was asked for (``received``), newest first."""
    return data_copy.account_copies(scope.settings, scope.account_id)


@router.post("/copies", tags=["data copy"], response_model=dict[str, Any], status_code=201)
def request_copy(body: DataCopyRequest, scope: Scope = Depends(rep)):
    """Request a one-time Data Copy from one of the account's customers into a customer of
    another account (``to_account``, ``to_customer``: the numbers that account gave you). Nothing
    of the other account is checked or shown until it approves."""
    copy = data_copy.request(scope.settings, scope.account_id, body, who=scope.who)
    return data_copy.copy_view(scope.settings, scope.account_id, copy.copy_id)


@router.get("/copies/{copy_id}", tags=["data copy"], response_model=dict[str, Any])
def get_copy(scope: Scope = Depends(reader), copy: DataCopy = Depends(copy_of(reader))):
    """One copy as the account sees it (the receiving account also gets its latest undo)."""
    shown = data_copy.copy_view(scope.settings, scope.account_id, copy.copy_id)
    if shown["side"] == "to":
        shown["undo"] = data_copy.latest_undo(scope.settings, copy)
    return shown


@router.post("/copies/{copy_id}/approve", tags=["data copy"], response_model=dict[str, Any])
def approve_copy(body: Approval, wait: float = WaitQuery, scope: Scope = Depends(rep),
                 copy: DataCopy = Depends(copy_of(rep))):
    """Approve a copy asked of this account: the worker makes it (waited for); the answer is the
    copy's task (``result``: what was created and overridden)."""
    _copy, task_id = data_copy.approve(scope.settings, scope.account_id, copy.copy_id, body.target_customer,
                                      who=scope.who)
    return _outcome(scope.settings, task_id, wait)


@router.post("/copies/{copy_id}/decline", tags=["data copy"], response_model=dict[str, Any])
def decline_copy(scope: Scope = Depends(rep), copy: DataCopy = Depends(copy_of(rep))):
    data_copy.decline(scope.settings, scope.account_id, copy.copy_id, who=scope.who)
    return data_copy.copy_view(scope.settings, scope.account_id, copy.copy_id)


@router.post("/copies/{copy_id}/undo", tags=["data copy"], response_model=dict[str, Any])
def undo_copy(body: UndoRequest, wait: float = WaitQuery, scope: Scope = Depends(rep),
              copy: DataCopy = Depends(copy_of(rep))):
    """Undo a copy that was made into this account's customer (409 with the items edited since,
    unless ``force``)."""
    task_id = data_copy.request_undo(scope.settings, scope.account_id, copy.copy_id, force=body.force, who=scope.who)
    return _outcome(scope.settings, task_id, wait)


@router.get("/sync-overrides", tags=["data sync"], response_model=dict[str, list[dict[str, Any]]])
def list_overrides(limit: int = Query(10, ge=1, le=100, description="Overrides per group."),
                   scope: Scope = Depends(reader)):
    """Each sync group's recent overrides (by group id), newest first, with what they replaced."""
    from snapsync.control import sync_groups

    groups = sync_groups.load_groups_for(scope.settings, scope.account_id)
    found = sync_history.recent_overrides(scope.settings, scope.account_id, [g.group_id for g in groups], limit)
    return {str(g): items for g, items in found.items()}


@router.get("/sync-overrides/{audit_id}", tags=["data sync"], response_model=dict[str, Any])
def get_override(item: dict = Depends(application_of(reader))):
    """One sync application: what it replaced, whether it was undone, and its latest undo."""
    return item


@router.post("/sync-overrides/{audit_id}/undo", tags=["data sync"], response_model=dict[str, Any])
def undo_override(body: UndoRequest, wait: float = WaitQuery, scope: Scope = Depends(rep),
                  item: dict = Depends(application_of(rep))):
    """Undo one sync application, with the conflict check of ``snapsync sync undo``: 409 with
    the items edited since (kept), unless ``force``."""
    task_id = sync_undo.request_undo(scope.settings, item["audit_id"], force=body.force, account_id=scope.account_id,
                                     who=scope.who)
    return _outcome(scope.settings, task_id, wait)
