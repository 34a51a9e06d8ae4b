"""The SQL of the management API, one function per statement; callers own the transaction.

Statements are assembled from the column lists below and from column names that our own models
chose (``_assignments`` refuses any other), never from client text: values always travel as
parameters. Hence the ``noqa: S608`` marks.

Every statement that changes what a key's keys.v1 event says also sets ``state_version`` on each
affected key (the outbox, see ``services/billing/outbox.py``): key updates do it in the same UPDATE,
plan and account updates through ``touch_keys_*`` in the same transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.billing.db import Conn
from services.billing.manage.tenancy import SUBTREE

ACCOUNT_COLUMNS = "id, name, parent_id, billing, status, currency, created_at, updated_at"
PLAN_COLUMNS = (
    "id, name, account_id, requests_per_minute, tokens_per_minute, max_concurrency, budget_micros,"
    " budget_window_seconds, allowed_models, expires_at, created_at, updated_at"
)
# a key with its plan's limits (for effective limits); never the hash
KEY_SELECT = """
SELECT k.id, k.account_id, k.plan_id, k.name, k.prefix, k.kind, k.status, k.expires_at, k.overrides,
       k.rotated_from, k.last_used_at, k.created_at, k.updated_at,
       p.requests_per_minute, p.tokens_per_minute, p.max_concurrency, p.budget_micros,
       p.budget_window_seconds, p.allowed_models
FROM api_keys k JOIN plans p ON p.id = k.plan_id
"""
_UPDATABLE = {
    "accounts": {"name", "billing", "status"},
    "plans": {"name", "requests_per_minute", "tokens_per_minute", "max_concurrency", "budget_micros",
              "budget_window_seconds", "allowed_models", "expires_at"},
    "api_keys": {"name", "plan_id", "status", "expires_at", "overrides"},
}
_PAGE = "($%d::text IS NULL OR %s > $%d) ORDER BY %s LIMIT $%d"
_GET_ACCOUNT = f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"  # noqa: S608
_GET_PLAN = f"SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"  # noqa: S608
_GET_KEY = KEY_SELECT + " WHERE k.id = $1"
_TOUCH_BELOW = (
    "UPDATE api_keys SET state_version = nextval('key_state_seq')"  # noqa: S608
    f" WHERE status <> 'revoked' AND account_id IN ({SUBTREE})"
)


def new_id(prefix: str) -> str:
    """``acct_``/``plan_``/``key_`` + 24 random hex digits: unguessable, so ids reveal nothing."""
    return f"{prefix}_{secrets.token_hex(12)}"


def _page(n: int, column: str) -> str:
    return _PAGE % (n, column, n, column, n + 1)


def _assignments(table: str, changes: Mapping[str, Any], first: int) -> tuple[str, list[Any]]:
    allowed = _UPDATABLE[table]
    sets, args = [], []
    for i, (column, value) in enumerate(changes.items(), start=first):
        if column not in allowed:  # column names come from our models, never from clients
            raise ValueError(f"{table}.{column} is not updatable")
        cast = "::jsonb" if column == "overrides" else ""
        sets.append(f"{column} = ${i}{cast}")
        args.append(orjson.dumps(value).decode() if column == "overrides" else value)
    return ", ".join(sets), args


# --- accounts ---------------------------------------------------------------------------------

async def get_account(conn: Conn, account_id: str, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(_GET_ACCOUNT + (" FOR UPDATE" if lock else ""), account_id)


async def list_accounts(
    conn: Conn, scope: Sequence[str] | None, parent_id: str | None, after: str | None,
    limit: int,
) -> list[asyncpg.Record]:
    sql = (
        f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE ($1::text[] IS NULL OR id = ANY($1))"  # noqa: S608
        f" AND ($2::text IS NULL OR parent_id = $2) AND {_page(3, 'id')}"
    )
    return await conn.fetch(sql, scope, parent_id, after, limit + 1)


async def insert_account(
    conn: Conn, name: str, parent_id: str | None, billing: str
) -> asyncpg.Record:
    sql = (
        "INSERT INTO accounts (id, name, parent_id, billing) VALUES ($1, $2, $3, $4)"  # noqa: S608
        f" RETURNING {ACCOUNT_COLUMNS}"
    )
    row = await conn.fetchrow(sql, new_id("acct"), name, parent_id, billing)
    assert row is not None
    return row


async def update_account(
    conn: Conn, account_id: str, changes: Mapping[str, Any]
) -> asyncpg.Record:
    sets, args = _assignments("accounts", changes, 2)
    sql = (
        f"UPDATE accounts SET {sets}, version = version + 1, updated_at = now() WHERE id = $1"  # noqa: S608
        f" RETURNING {ACCOUNT_COLUMNS}"
    )
    row = await conn.fetchrow(sql, account_id, *args)
    assert row is not None
    return row


async def touch_keys_below(conn: Conn, account_id: str) -> int:
    """New versions for every live key of this account and its descendants (status is inherited)."""
    result = await conn.execute(_TOUCH_BELOW, account_id)
    return int(result.split()[-1])


# --- plans ------------------------------------------------------------------------------------

async def get_plan(conn: Conn, plan_id: str, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(_GET_PLAN + (" FOR UPDATE" if lock else ""), plan_id)


async def list_plans(
    conn: Conn, scope: Sequence[str] | None, after: str | None, limit: int
) -> list[asyncpg.Record]:
    sql = (
        f"SELECT {PLAN_COLUMNS} FROM plans WHERE ($1::text[] IS NULL OR account_id IS NULL"  # noqa: S608
        f" OR account_id = ANY($1)) AND {_page(2, 'id')}"
    )
    return await conn.fetch(sql, scope, after, limit + 1)


async def insert_plan(conn: Conn, values: Mapping[str, Any]) -> asyncpg.Record:
    for column in values:
        if column not in _UPDATABLE["plans"] | {"account_id"}:
            raise ValueError(f"plans.{column} is not insertable")
    columns = ["id", *values]
    marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    sql = f"INSERT INTO plans ({', '.join(columns)}) VALUES ({marks}) RETURNING {PLAN_COLUMNS}"  # noqa: S608
    row = await conn.fetchrow(sql, new_id("plan"), *values.values())
    assert row is not None
    return row


async def update_plan(conn: Conn, plan_id: str, changes: Mapping[str, Any]) -> asyncpg.Record:
    sets, args = _assignments("plans", changes, 2)
    sql = (
        f"UPDATE plans SET {sets}, version = version + 1, updated_at = now() WHERE id = $1"  # noqa: S608
        f" RETURNING {PLAN_COLUMNS}"
    )
    row = await conn.fetchrow(sql, plan_id, *args)
    assert row is not None
    return row


async def touch_keys_of_plan(conn: Conn, plan_id: str) -> int:
    result = await conn.execute(
        "UPDATE api_keys SET state_version = nextval('key_state_seq')"
        " WHERE plan_id = $1 AND status <> 'revoked'", plan_id,
    )
    return int(result.split()[-1])


# --- keys -------------------------------------------------------------------------------------

async def get_key(conn: Conn, key_id: str, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(_GET_KEY + (" FOR UPDATE OF k" if lock else ""), key_id)


async def list_keys(
    conn: Conn, scope: Sequence[str] | None, account_id: str | None, status: str | None,
    kind: str | None, after: str | None, limit: int,
) -> list[asyncpg.Record]:
    sql = (
        f"{KEY_SELECT} WHERE ($1::text[] IS NULL OR k.account_id = ANY($1))"
        " AND ($2::text IS NULL OR k.account_id = $2) AND ($3::text IS NULL OR k.status = $3)"
        f" AND ($4::text IS NULL OR k.kind = $4) AND {_page(5, 'k.id')}"
    )
    return await conn.fetch(sql, scope, account_id, status, kind, after, limit + 1)


async def insert_key(
    conn: Conn, *, account_id: str, plan_id: str, name: str, key_hash: bytes, prefix: str,
    kind: str, status: str, overrides: Mapping[str, Any], expires_at: datetime | None,
    rotated_from: str | None = None,
) -> str:
    """Insert a key (its state_version comes from the sequence, so the outbox publishes it)."""
    key_id = new_id("key")
    await conn.execute(
        "INSERT INTO api_keys (id, account_id, plan_id, name, key_hash, prefix, kind, status, overrides,"
        " expires_at, rotated_from) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)",
        key_id, account_id, plan_id, name, key_hash, prefix, kind, status,
        orjson.dumps(dict(overrides)).decode(), expires_at, rotated_from,
    )
    return key_id


async def update_key(conn: Conn, key_id: str, changes: Mapping[str, Any]) -> None:
    sets, args = _assignments("api_keys", changes, 2)
    sql = (
        f"UPDATE api_keys SET {sets}, version = version + 1,"  # noqa: S608
        " state_version = nextval('key_state_seq'), updated_at = now() WHERE id = $1"
    )
    await conn.execute(sql, key_id, *args)
