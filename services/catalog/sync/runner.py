"""Running a sync: read the feed, plan against the catalog, apply in one transaction, record the run.

Everything a run changes — new price versions, models added by policy, held changes — is written in
one transaction together with its audit records and the ``sync_runs`` row, so a run is applied whole
or not at all; published afterwards through the outbox. Runs take a database-wide advisory lock, so
two replicas (or the CLI beside the service) never plan against the same state at once.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import structlog

from services.catalog import prices, store
from services.catalog.records import ModelRecord, PriceRecord
from services.catalog.store import Conn
from services.catalog.sync import litellm, openai_models, openrouter
from services.catalog.sync.feed import FeedError, ParsedFeed
from services.catalog.sync.fetch import read_feed
from services.catalog.sync.plan import Amounts, CatalogState, Plan, PriceProposal, make_plan
from services.catalog.sync.report import (
    AppliedChange,
    HeldChange,
    PriceView,
    Status,
    SyncReport,
    Trigger,
    planned,
)
from services.catalog.sync.sources import Format, Policy, SyncSource
from services.common.errors import TollgateError

log = structlog.get_logger(__name__)
SYNC_LOCK = 0x73796E63  # "sync"
PARSERS: dict[Format, Callable[[Any, SyncSource, int], ParsedFeed]] = {
    "openai-models": openai_models.parse, "litellm": litellm.parse, "openrouter": openrouter.parse,
}


@dataclass(frozen=True)
class SyncConfig:
    max_bytes: int
    timeout: float
    factor: Decimal
    policy: Policy
    max_micros: int


def _amounts_json(amounts: Amounts) -> dict[str, int]:
    names = ("input_micros_per_mtok", "cached_input_micros_per_mtok", "cache_write_micros_per_mtok",
             "output_micros_per_mtok", "batch_discount_bps")
    return dict(zip(names, amounts, strict=True))


def amounts_of(data: dict[str, int]) -> Amounts:
    return (data["input_micros_per_mtok"], data["cached_input_micros_per_mtok"],
            data["cache_write_micros_per_mtok"], data["output_micros_per_mtok"], data["batch_discount_bps"])


def price_record(model_id: str, amounts: Amounts, at: datetime, source: str) -> PriceRecord:
    return PriceRecord(
        id=prices.new_price_id(model_id, at), model_id=model_id, effective_from=at,
        input_micros_per_mtok=amounts[0], cached_input_micros_per_mtok=amounts[1],
        cache_write_micros_per_mtok=amounts[2], output_micros_per_mtok=amounts[3],
        batch_discount_bps=amounts[4], source=source,
    )


async def load_state(conn: Conn, source: SyncSource) -> CatalogState:
    models = {r["id"]: ModelRecord.from_row(r) for r in await conn.fetch("SELECT * FROM models")}
    aliases = frozenset(r["id"] for r in await conn.fetch("SELECT id FROM aliases WHERE NOT deleted"))
    deployments = await conn.fetch(
        "SELECT model_id, upstream_model, endpoint FROM deployments WHERE NOT deleted AND backend = $1",
        source.backend,
    )
    endpoint = (source.endpoint or source.url or "").rstrip("/")
    in_force = await conn.fetch(
        """SELECT DISTINCT ON (model_id) * FROM prices WHERE effective_from <= now()
           ORDER BY model_id, effective_from DESC, id DESC"""
    )
    return CatalogState(
        models=models, aliases=aliases,
        upstream={d["upstream_model"]: d["model_id"] for d in deployments},
        prices={r["model_id"]: PriceRecord.from_row(r) for r in in_force},
        served_here=frozenset(
            d["model_id"] for d in deployments if endpoint and d["endpoint"].rstrip("/") == endpoint
        ),
    )


async def _hold(
    conn: Conn, source: SyncSource, proposal: PriceProposal, actor: store.Actor
) -> str:
    """Queue (or refresh) the one open pending change of this source for this model."""
    current = proposal.current.model_dump(mode="json") if proposal.current is not None else None
    proposed = _amounts_json(proposal.amounts)
    row = await conn.fetchrow(
        """SELECT id, proposed_price FROM pending_changes
           WHERE source = $1 AND kind = 'price' AND model_id = $2 AND status = 'pending' FOR UPDATE""",
        source.name, proposal.model_id,
    )
    if row is not None and orjson.loads(row["proposed_price"]) == proposed:
        return str(row["id"])
    if row is not None:
        change_id = str(row["id"])
        await conn.execute(
            """UPDATE pending_changes SET proposed_price = $2::jsonb, reasons = $3, current_price = $4::jsonb,
                      updated_at = now() WHERE id = $1""",
            change_id, orjson.dumps(proposed).decode(), list(proposal.reasons),
            orjson.dumps(current).decode(),
        )
    else:
        change_id = f"chg_{secrets.token_hex(12)}"
        await conn.execute(
            """INSERT INTO pending_changes (id, source, model_id, reasons, current_price, proposed_price)
               VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)""",
            change_id, source.name, proposal.model_id, list(proposal.reasons), orjson.dumps(current).decode(),
            orjson.dumps(proposed).decode(),
        )
    await store.audit(conn, actor, "held", "pending_change", change_id, None, current,
                      {"model_id": proposal.model_id, **proposed}, "; ".join(proposal.reasons))
    return change_id


async def _apply(conn: Conn, plan: Plan, source: SyncSource, actor: store.Actor,
                 max_micros: int) -> tuple[list[AppliedChange], list[HeldChange]]:
    now: datetime = await conn.fetchval("SELECT now()")
    applied: list[AppliedChange] = []
    for new in plan.new_models:
        await store.put(conn, new.model, actor)
        if new.deployment is not None:
            await store.put(conn, new.deployment, actor)
        price_id = None
        if new.price is not None:
            price = price_record(new.model.id, new.price, now, actor.name)
            await prices.add_version(conn, price, actor, max_micros=max_micros)
            price_id = price.id
        applied.append(AppliedChange(
            model_id=new.model.id, change="model_added", price_id=price_id, enabled=new.model.enabled,
            price=PriceView.of(new.price) if new.price else None,
            note=f"added disabled: {new.why_disabled}" if new.why_disabled else None,
        ))
    for proposal in plan.prices:
        price = price_record(proposal.model_id, proposal.amounts, now, actor.name)
        await prices.add_version(conn, price, actor, max_micros=max_micros)
        applied.append(AppliedChange(model_id=proposal.model_id, change="price", price_id=price.id,
                                     price=PriceView.of(proposal.amounts)))
    held = [
        HeldChange(change_id=await _hold(conn, source, p, actor), model_id=p.model_id,
                   reasons=list(p.reasons),
                   current=PriceView.of(p.current.amounts()) if p.current else None,
                   proposed=PriceView.of(p.amounts))
        for p in plan.held
    ]
    return applied, held


async def _record(conn: Conn, report: SyncReport) -> None:
    await conn.execute(
        """INSERT INTO sync_runs (source, trigger, started_at, status, report)
           VALUES ($1, $2, $3, $4, $5::jsonb)""",
        report.source, report.trigger, report.started_at, report.status, report.model_dump_json(),
    )


async def run_sync(
    pool: asyncpg.Pool, source: SyncSource, config: SyncConfig, trigger: Trigger, *,
    dry_run: bool = False, api_key: str | None = None,
) -> SyncReport:
    """One run of ``source``; never raises for a bad feed (the report says why nothing changed)."""
    policy = source.unknown_models or config.policy
    report = SyncReport(source=source.name, format=source.format, trigger=trigger, status="failed",
                        started_at=datetime.now(UTC))
    try:
        document = await read_feed(source, max_bytes=config.max_bytes, timeout=config.timeout,
                                   api_key=api_key)
        feed = PARSERS[source.format](document, source, config.max_micros)
    except FeedError as exc:
        report = report.model_copy(update={"error": str(exc)})
        async with pool.acquire() as conn:
            await _record(conn, report)
        log.warning("catalog_sync_refused", source=source.name, reason=str(exc))
        return report
    actor = store.Actor(f"sync:{source.name}")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SYNC_LOCK)
        plan = make_plan(feed, await load_state(conn, source), source, policy, config.factor)
        report = planned(report, plan, len(feed.entries) + len(feed.errors), feed.skipped)
        status: Status
        if plan.errors:
            status = "failed"
            error = f"{len(plan.errors)} entries concerning the catalog are invalid; nothing applied"
            report = report.model_copy(update={"status": status, "error": error})
        elif dry_run:
            held = [HeldChange(change_id=None, model_id=p.model_id, reasons=list(p.reasons),
                               current=PriceView.of(p.current.amounts()) if p.current else None,
                               proposed=PriceView.of(p.amounts)) for p in plan.held]
            report = report.model_copy(update={"status": "dry_run", "held": held})
        else:
            try:
                async with conn.transaction():  # a savepoint: a refused write undoes the whole plan
                    applied, held = await _apply(conn, plan, source, actor, config.max_micros)
                status = "applied" if applied else "held" if held else "unchanged"
                report = report.model_copy(update={"status": status, "applied": applied, "held": held})
            except TollgateError as exc:
                report = report.model_copy(update={"status": "failed", "error": exc.message})
        await _record(conn, report)
    log.info("catalog_sync_run", source=source.name, status=report.status, applied=len(report.applied),
             held=len(report.held), errors=report.errors_total, trigger=trigger)
    return report


async def ran_recently(pool: asyncpg.Pool, source: str, seconds: float) -> bool:
    """Whether a run of ``source`` finished within ``seconds`` (another replica, or a manual run)."""
    async with pool.acquire() as conn:
        return bool(await conn.fetchval(
            "SELECT 1 FROM sync_runs WHERE source = $1 AND finished_at > now() - make_interval(secs => $2)",
            source, seconds,
        ))
