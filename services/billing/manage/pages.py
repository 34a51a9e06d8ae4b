"""List answers: ``{"object": "list", "data": [...], "has_more": bool}``, paged by id.

Stores fetch ``limit + 1`` rows ordered by id; the extra row only says that another page exists.
The next page is asked for with ``after=<last id>`` (ids never change, so a page never repeats or
skips a row that existed when the first page was read).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from services.billing.manage.views import ListView

L = TypeVar("L", bound=ListView[Any])


def page(
    rows: Sequence[asyncpg.Record], limit: int, view: Callable[[asyncpg.Record], Any], cls: type[L]
) -> L:
    return cls(data=[view(r) for r in rows[:limit]], has_more=len(rows) > limit)
