"""Every write to the catalog's tables goes through here, inside the caller's transaction: the row,
its new catalog.v1 version (``state_version = nextval``, which also puts it in the outbox) and its
audit record are written together, so a change is either all there or not at all.

Seed, management API, sync and review all call these functions; none writes SQL of its own to the
entity tables. Table and column names come from our own record classes (never from input), so the
SQL assembled from them below cannot be injected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from services.catalog.records import (
    KIND_OF,
    TABLES,
    AliasRecord,
    Kind,
    PriceRecord,
    Record,
    as_json,
    kind_of,
)

R = TypeVar("R", bound=Record)
# a plain connection or one lent by the pool: what every SQL function here takes
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Action = Literal["create", "update", "delete"]


@dataclass(frozen=True)
class Actor:
    """Who makes a change, as the audit trail names it: ``admin``, ``<account>/<key>``, ``seed``,
    ``sync:<source>``; and the request it came with."""

    name: str
    request_id: str = ""


@dataclass(frozen=True)
class Stored:
    """A record as stored, with its bookkeeping."""

    record: Any
    version: int
    deleted: bool


@dataclass(frozen=True)
class Change:
    """What a write did: ``action`` None means the record was already exactly so (nothing written)."""

    action: Action | None
    version: int


def _jsonb(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


async def audit(
    conn: Conn, actor: Actor, action: str, kind: str, entity_id: str, version: int | None,
    before: Any, after: Any, note: str = "",
) -> None:
    await conn.execute(
        """INSERT INTO catalog_audit (actor, request_id, action, entity_kind, entity_id, version, before,
                                      after, note)
           VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9)""",
        actor.name, actor.request_id, action, kind, entity_id, version, _jsonb(before), _jsonb(after), note,
    )


async def get(conn: Conn, cls: type[R], entity_id: str, *, lock: bool = False) -> Stored | None:
    """The stored record (deleted ones too: ``Stored.deleted``), optionally locked for update."""
    table = TABLES[_kind(cls)]
    suffix = " FOR UPDATE" if lock else ""
    row = await conn.fetchrow(f"SELECT * FROM {table} WHERE id = $1{suffix}", entity_id)  # noqa: S608
    if row is None:
        return None
    deleted = bool(row["deleted"]) if "deleted" in row else False
    return Stored(cls.from_row(row), int(row["state_version"]), deleted)


def _kind(cls: type[Record]) -> Kind:
    return KIND_OF[cls]


async def put(conn: Conn, record: Record, actor: Actor) -> Change:
    """Create or replace a model, deployment or alias (prices: ``add_price``). Un-deletes a deleted
    deployment or alias of the same id. Writes nothing (and audits nothing) when nothing differs."""
    kind = kind_of(record)
    if kind == "price":
        raise TypeError("price versions are added with add_price, never replaced")
    table = TABLES[kind]
    current = await get(conn, type(record), record.id, lock=True)
    fields = record.columns()
    if current is None:
        cols = ", ".join(fields)
        marks = ", ".join(f"${i}" for i in range(2, len(fields) + 2))
        sql = f"INSERT INTO {table} (id, {cols}) VALUES ($1, {marks}) RETURNING state_version"  # noqa: S608
        version = int(await conn.fetchval(sql, record.id, *fields.values()))
        await audit(conn, actor, "create", kind, record.id, version, None, as_json(record))
        return Change("create", version)
    if current.record == record and not current.deleted:
        return Change(None, current.version)
    sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(fields, start=2))
    undelete = ", deleted = false" if kind in ("deployment", "alias") else ""
    sql = (
        f"UPDATE {table} SET {sets}{undelete}, state_version = nextval('catalog_version_seq'), "  # noqa: S608
        "updated_at = now() WHERE id = $1 RETURNING state_version"
    )
    version = int(await conn.fetchval(sql, record.id, *fields.values()))
    before = None if current.deleted else as_json(current.record)
    await audit(conn, actor, "create" if current.deleted else "update", kind, record.id, version, before,
                as_json(record))
    return Change("create" if current.deleted else "update", version)


async def delete(conn: Conn, cls: type[R], entity_id: str, actor: Actor) -> Change | None:
    """Soft-delete a deployment or alias: published as deleted, kept for the audit trail. None when
    there is no such (live) row."""
    kind = _kind(cls)
    if kind not in ("deployment", "alias"):
        raise TypeError(f"a {kind} is never deleted")
    current = await get(conn, cls, entity_id, lock=True)
    if current is None or current.deleted:
        return None
    sql = (
        f"UPDATE {TABLES[kind]} SET deleted = true, state_version = nextval('catalog_version_seq'), "  # noqa: S608
        "updated_at = now() WHERE id = $1 RETURNING state_version"
    )
    version = int(await conn.fetchval(sql, entity_id))
    await audit(conn, actor, "delete", kind, entity_id, version, as_json(current.record), None)
    return Change("delete", version)


async def add_price(conn: Conn, price: PriceRecord, actor: Actor, note: str = "") -> Change:
    """Insert a new price version. The same id with the same numbers is a no-op (a re-run seed); the
    same id with other numbers is refused by the caller (``price_conflict``) before it gets here."""
    fields = price.columns()
    cols = ", ".join(fields)
    marks = ", ".join(f"${i}" for i in range(2, len(fields) + 2))
    version = int(await conn.fetchval(
        f"INSERT INTO prices (id, {cols}) VALUES ($1, {marks}) RETURNING state_version",  # noqa: S608
        price.id, *fields.values(),
    ))
    await audit(conn, actor, "create", "price", price.id, version, None, as_json(price), note)
    return Change("create", version)


async def prices_of(conn: Conn, model_id: str) -> list[Stored]:
    """Every price version of a model, oldest effective first."""
    rows = await conn.fetch(
        "SELECT * FROM prices WHERE model_id = $1 ORDER BY effective_from, id", model_id
    )
    return [Stored(PriceRecord.from_row(r), int(r["state_version"]), False) for r in rows]


async def price_in_force(conn: Conn, model_id: str, at: Any = None) -> PriceRecord | None:
    """The version in force at ``at`` (default: now): the latest whose effective_from has passed — the
    same rule as the edge's ``CatalogView.current_price``."""
    row = await conn.fetchrow(
        """SELECT * FROM prices WHERE model_id = $1 AND effective_from <= coalesce($2, now())
           ORDER BY effective_from DESC, id DESC LIMIT 1""",
        model_id, at,
    )
    return None if row is None else PriceRecord.from_row(row)


async def live_alias_pointing_at(conn: Conn, model_id: str) -> list[AliasRecord]:
    rows = await conn.fetch("SELECT * FROM aliases WHERE target = $1 AND NOT deleted ORDER BY id", model_id)
    return [AliasRecord.from_row(r) for r in rows]


async def id_taken(conn: Conn, public_id: str) -> Kind | None:
    """Model ids and alias ids share one namespace (both are what a client sends as ``model``)."""
    if await conn.fetchval("SELECT 1 FROM models WHERE id = $1", public_id):
        return "model"
    if await conn.fetchval("SELECT 1 FROM aliases WHERE id = $1 AND NOT deleted", public_id):
        return "alias"
    return None


async def row_of(conn: Conn, sql: str, *args: object) -> asyncpg.Record:
    """The one row a statement returns (one the caller's transaction just wrote or locked)."""
    row = await conn.fetchrow(sql, *args)
    assert row is not None, "a row this transaction holds went missing"
    return row
