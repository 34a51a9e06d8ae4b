"""Who may see and change what.

The admin (operator) sees everything. A management key of account A sees A's *tree*: A and every
account below it along ``parent_id``. Anything outside the tree answers 404 exactly like something
that does not exist, so a caller cannot probe for other tenants' ids. Plans are visible to a tree when
global (no owner) or owned inside it, and a plan owned by an account is usable only by keys of that
owner's tree. What a scoped caller may not do at all (create plans, change billing modes, suspend its
own account) answers 403; a key override looser than the plan is an invalid value (400).
"""

from __future__ import annotations

import asyncpg

from services.billing.db import Conn
from services.common.errors import NotFound, PermissionDenied
from services.common.manage.context import Caller

# Is $2 the account $1 itself or one of its ancestors? (walks up: depth, not tree size)
_WITHIN = """
WITH RECURSIVE up (id, parent_id) AS (
    SELECT id, parent_id FROM accounts WHERE id = $1
    UNION ALL
    SELECT a.id, a.parent_id FROM accounts a JOIN up ON a.id = up.parent_id
)
SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)
"""
SUBTREE = """
WITH RECURSIVE tree (id) AS (
    SELECT id FROM accounts WHERE id = $1
    UNION ALL
    SELECT a.id FROM accounts a JOIN tree t ON a.parent_id = t.id
)
SELECT id FROM tree
"""


async def within(conn: Conn, account_id: str, root: str) -> bool:
    """Whether ``account_id`` is ``root`` or below it."""
    return bool(await conn.fetchval(_WITHIN, account_id, root))


async def sees_account(conn: Conn, caller: Caller, account_id: str) -> bool:
    if caller.account_id is None:
        return True
    return await within(conn, account_id, caller.account_id)


async def tree_of(conn: Conn, caller: Caller) -> list[str] | None:
    """The account ids a scoped caller sees; None for the admin (no restriction)."""
    if caller.account_id is None:
        return None
    return [r["id"] for r in await conn.fetch(SUBTREE, caller.account_id)]


def not_found(kind: str, resource_id: str, param: str | None = None) -> NotFound:
    return NotFound(f"No {kind} found with id '{resource_id}'.", param=param, code=f"{kind}_not_found")


async def require_account(
    conn: Conn, caller: Caller, account: asyncpg.Record | None, account_id: str,
    param: str | None = None,
) -> asyncpg.Record:
    """``account`` (the row fetched by id) if it exists and the caller sees it; else 404."""
    if account is None or not await sees_account(conn, caller, account_id):
        raise not_found("account", account_id, param)
    return account


async def sees_plan(conn: Conn, caller: Caller, owner: str | None) -> bool:
    if caller.account_id is None or owner is None:
        return True
    return await within(conn, owner, caller.account_id)


async def plan_fits_account(conn: Conn, owner: str | None, account_id: str) -> bool:
    """A plan owned by an account serves only keys of that owner's tree."""
    return owner is None or await within(conn, account_id, owner)


def admin_only(caller: Caller, what: str) -> None:
    if not caller.admin:
        raise PermissionDenied(f"Only the platform operator can {what}.", code="admin_only")
