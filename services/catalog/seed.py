"""Catalog as code: load ``infra/catalog/seed.yaml`` into the catalog's database and publish every
entity on catalog.v1 (compacted), so edges and routers converge on it.

The seed goes through the same writes as the management API (``store``): an entity whose content
changed gets a new version and an audit record (actor ``seed``); an unchanged one is left alone.
Afterwards *every* entity is re-published at its current version (harmless on a compacted topic, and it
repairs a topic that lost data). Price versions are immutable: a seed never rewrites a price id's
numbers (it refuses instead), and only a model's first version may be dated in the past.
Entities the file does not mention (made through the API or a sync) are left as they are.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.catalog import prices, store
from services.catalog.outbox import republish_all
from services.catalog.records import (
    AliasRecord,
    DeploymentRecord,
    ModelRecord,
    PriceRecord,
    Record,
    discount_bps,
)
from services.catalog.store import Conn
from services.common.errors import TollgateError
from services.common.kafka.producer import EventProducer
from services.common.money import parse_micros

SEED_FILE = Path(__file__).resolve().parents[2] / "infra" / "catalog" / "seed.yaml"
SEED_ACTOR = store.Actor("seed")
_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")
MAX_SEED_PRICE_MICROS = 10**12  # the seed's own sanity bound (1,000,000 USD per 1M tokens)


class SeedPrice(BaseModel):
    """A price as written in the seed: USD per 1M tokens as decimal strings."""

    model_config = ConfigDict(extra="forbid")
    id: str
    model_id: str
    effective_from: datetime
    input: int
    cached_input: int
    cache_write: int
    output: int
    batch_discount: int = 0

    @field_validator("input", "cached_input", "cache_write", "output", mode="before")
    @classmethod
    def _money(cls, value: object) -> int:
        return parse_micros(value, "price")

    @field_validator("batch_discount", mode="before")
    @classmethod
    def _discount(cls, value: object) -> int:
        return discount_bps(value)

    def record(self) -> PriceRecord:
        return PriceRecord(
            id=self.id, model_id=self.model_id, effective_from=self.effective_from,
            input_micros_per_mtok=self.input, cached_input_micros_per_mtok=self.cached_input,
            cache_write_micros_per_mtok=self.cache_write, output_micros_per_mtok=self.output,
            batch_discount_bps=self.batch_discount, source="seed",
        )


class SeedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[ModelRecord] = Field(default_factory=list)
    deployments: list[DeploymentRecord] = Field(default_factory=list)
    prices: list[SeedPrice] = Field(default_factory=list)
    aliases: list[AliasRecord] = Field(default_factory=list)


def _substitute(text: str, env: dict[str, str], where: str) -> str:
    """``${NAME}`` (required) and ``${NAME:-default}`` from ``env``."""

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ValueError(f"{where}: endpoint needs ${{{name}}}")

    return _VARIABLE.sub(one, text)


def load_seed(path: Path = SEED_FILE, environ: dict[str, str] | None = None) -> list[Record]:
    """Parse and validate the seed; ``${NAME}`` in deployment endpoints comes from ``environ``."""
    env = dict(os.environ) if environ is None else environ
    raw: Any = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the seed must be a mapping of models, deployments, prices, aliases")
    for dep in raw.get("deployments") or []:
        if isinstance(dep, dict) and isinstance(dep.get("endpoint"), str):
            dep["endpoint"] = _substitute(dep["endpoint"], env, f"deployment {dep.get('id')}")
    seed = SeedFile.model_validate(raw)
    return [*seed.models, *seed.deployments, *(p.record() for p in seed.prices), *seed.aliases]


async def apply_seed(conn: Conn, records: list[Record]) -> int:
    """Write ``records`` (inside the caller's transaction); return how many changed."""
    changed = 0
    models = [r for r in records if isinstance(r, ModelRecord)]
    # a model's replacement may come later in the file: create models without it first
    for model in models:
        if await store.get(conn, ModelRecord, model.id) is None and model.replacement is not None:
            await store.put(conn, model.model_copy(update={"replacement": None}), SEED_ACTOR)
    for record in records:
        try:
            if isinstance(record, PriceRecord):
                change = await prices.add_version(
                    conn, record, SEED_ACTOR, max_micros=MAX_SEED_PRICE_MICROS, history_ok=True
                )
            else:
                change = await store.put(conn, record, SEED_ACTOR)
        except TollgateError as exc:
            raise ValueError(f"{type(record).__name__.removesuffix('Record').lower()} {record.id}: "
                             f"{exc.message}") from None
        changed += change.action is not None
    return changed


async def seed(dsn: str, producer: EventProducer, records: list[Record]) -> int:
    """Apply ``records`` in one transaction, then publish the whole catalog; return how many changed."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            changed = await apply_seed(conn, records)
        await republish_all(conn, producer)
    finally:
        await conn.close()
    return changed
