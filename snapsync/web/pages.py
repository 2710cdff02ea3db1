"""Rendering pages: the templates, the layout's shared context, form helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from snapsync.control import notifications
from snapsync.web.auth import Scope
from snapsync.web.timefmt import local

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

KIND_LABELS = {"snapshot_ready": "Snapshot ready", "sync_pending": "Data Sync", "snapshot_failed": "Snapshot failed",
               "snapshot_late": "Snapshot late", "customer_moved": "Customer moved",
               "data_copy_request": "Data Copy request",
               "data_copy_approved": "Data Copy approved", "data_copy_declined": "Data Copy declined",
               "data_copy_done": "Data Copy done", "data_copy_failed": "Data Copy failed",
               "data_copy_undo": "Data Copy undone", "data_copy_undo_done": "Data Copy undone",
               "data_copy_undo_failed": "Data Copy undo refused", "sync_undo_done": "Data Sync undo",
               "sync_undo_failed": "Data Sync undo refused"}
templates.env.globals["kind_label"] = lambda kind: KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


def _size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def describe(record: dict) -> str:
    """One line saying what an audit record changed: the fields that differ between before
    and after, or the record's summary. Row images (sync applications) are not shown."""
    before, after, detail = record.get("before"), record.get("after"), record.get("detail") or {}
    if record["entity"] in ("sync_apply", "data_copy_apply"):
        return ", ".join(f"{k}: {detail[k]}" for k in ("table", "source_customer", "target_customer", "mode", "created",
                                                       "overridden", "rows") if k in detail)
    if record["entity"] == "data_copy":
        return "; ".join(f"{k}: {_short(v)}" for k, v in detail.items() if k in (
            "source_customer", "categories", "mode", "to_account", "to_customer", "from_account", "target_customer",
            "target_name", "created", "overridden", "rows"))
    if isinstance(before, dict) and isinstance(after, dict):
        keys = [k for k in after if before.get(k) != after.get(k)]
        return "; ".join(f"{k}: {_short(before.get(k))} → {_short(after.get(k))}" for k in keys) or "no change"
    if isinstance(after, dict):
        return "; ".join(f"{k}: {_short(v)}" for k, v in after.items() if v is not None and k != "account_id")
    if record["entity"] == "delivery":
        return ", ".join(f"{k}: {detail[k]}" for k in ("slot_date", "kind", "format", "rows", "bytes", "error")
                         if k in detail)
    if isinstance(detail, dict):
        return ", ".join(f"{k}: {_short(v)}" for k, v in detail.items() if k in ("what", "packages", "format", "user"))
    return ""


def _short(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)


def dataset_name(table: str) -> str:
    """A data set's name as the product calls it (its table name when not in the catalog)."""
    from snapsync.schemas.catalog import dataset

    try:
        return dataset(table).name
    except KeyError:
        return table


templates.env.filters["size"] = _size
templates.env.globals["dataset_name"] = dataset_name
templates.env.globals["describe"] = describe
templates.env.globals["local"] = local


async def render(request: Request, name: str, scope: Scope | None, status: int = 200, **ctx: Any):
    """A page of the app: the template with the layout's context (account, user, CSRF token,
    unread messages)."""
    base: dict[str, Any] = {"scope": scope, "csrf": scope.csrf if scope else ""}
    if scope is not None:
        base["unread"] = await run_in_threadpool(notifications.unread_count, scope.settings, scope.account_id,
                                                 scope.user.user_id)
        base["a"] = f"/accounts/{scope.account_id}"
    base.update(ctx)
    response = templates.TemplateResponse(request, name, base, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def int_list(values: list[str]) -> tuple[tuple[int, ...], bool]:
    """Form checkbox values as ints; (ints, False) when one was not a whole number."""
    out = []
    for v in values:
        try:
            out.append(int(v))
        except ValueError:
            return tuple(out), False
    return tuple(out), True
