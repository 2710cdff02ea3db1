"""The validated models of snapsync's own state (docs/contracts.md, contract 9): users, sync
groups, snapshot settings. Their tables, and where each lives, are in ``schemas/state.py``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from snapsync.schemas.catalog import CATEGORY_HINT, CATEGORY_INFO

Role = Literal["auth-rep", "viewer"]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class User(BaseModel):
    """A person of the Services web app: one account, a role (``auth-rep`` changes and
    downloads; ``viewer`` reads)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: int | None = None
    account_id: int = Field(gt=0)
    email: str
    role: Role = "viewer"
    disabled: bool = False

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        v = v.strip().lower()
        if len(v) > 254 or not _EMAIL.match(v):
            raise ValueError("give an e-mail address such as name@example.com")
        return v

    @property
    def can_change(self) -> bool:
        return self.role == "auth-rep"


SyncMode = Literal["create-only", "override"]
CLI_CATEGORIES = {c.cli: c.name for c in CATEGORY_INFO}


class SyncGroup(BaseModel):
    """One sync-from customer, its sync-to customers, the categories and the mode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group_id: int | None = None
    account_id: int
    source_customer: int = Field(gt=0)
    targets: tuple[int, ...]
    categories: tuple[str, ...]
    mode: SyncMode = "create-only"

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("give at least one sync-to customer")
        if len(set(v)) != len(v):
            raise ValueError("a sync-to customer is listed twice")
        return tuple(sorted(v))

    @field_validator("categories")
    @classmethod
    def _categories(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return check_categories(v)


def check_categories(v: tuple[str, ...]) -> tuple[str, ...]:
    """Data Sync's categories (stored names), sorted.

    Raises:
        ValueError: none, or an unknown one.
    """
    if not v:
        raise ValueError("choose at least one data category")
    if any(c not in CLI_CATEGORIES.values() for c in v):  # the value is not quoted back: it is input
        raise ValueError(f"unknown data category: {CATEGORY_HINT}")
    return tuple(sorted(set(v)))


#: The largest id the tables hold (INT UNSIGNED).
MAX_ID = 2**32 - 1


class DataCopyRequest(BaseModel):
    """A request for a one-time Data Copy: setup data of one of the requesting account's
    customers into a customer of another account, which that account approves or declines
    (``control/data_copy.py``). The categories, and what they never include, are Data Sync's.

    ``to_account`` and ``to_customer`` are the numbers the requester was given by the other
    account out of band; the request shows nothing of that account until it approves.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_customer: int = Field(gt=0, le=MAX_ID, description="The requesting account's customer to copy from.")
    to_account: int = Field(gt=0, le=MAX_ID, description="The account number of the receiving account.")
    to_customer: int = Field(gt=0, le=MAX_ID, description="The customer number the receiving account gave you (it "
                                                          "confirms or picks its customer when it approves).")
    categories: tuple[str, ...] = Field(description="codes, facilities, referring_providers, payers.")
    mode: SyncMode = "create-only"

    @field_validator("categories")
    @classmethod
    def _categories(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return check_categories(v)


Format = Literal["dat", "mysql", "parquet"]
Kind = Literal["full", "incremental"]
Packaging = Literal["per-customer", "combined"]
Container = Literal["folder", "zip"]


class SnapshotSettings(BaseModel):
    """An account's Recurring Data Snapshots settings (validated on write)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_id: int = Field(gt=0)
    enabled: bool = True
    format: Format = "dat"
    kind: Kind = "full"
    packaging: Packaging = "per-customer"
    container: Container = "folder"
    customers: tuple[int, ...]
    keep: int = Field(default=1, ge=1, le=30, description="deliveries kept; the product overwrites daily (1)")

    @field_validator("customers")
    @classmethod
    def _customers(cls, v: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        # Disabled settings may have none left: every selected customer moved to another account.
        if not v and info.data.get("enabled", True):
            raise ValueError("select at least one customer")
        if len(set(v)) != len(v):
            raise ValueError("a customer is listed twice")
        if any(c <= 0 for c in v):
            raise ValueError("customer ids are positive integers")
        return tuple(sorted(v))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
