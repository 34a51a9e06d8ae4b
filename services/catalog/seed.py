"""Catalog as code: load ``infra/catalog/seed.yaml`` into the catalog's database and publish every
entity on catalog.v1 (compacted), so edges and routers converge on it.

An entity whose content changed gets ``version + 1``; unchanged entities keep their version and are
re-published as they are (harmless on a compacted topic, and it repairs a topic that lost data).
Price rows are immutable versions: a seed never rewrites a price id's numbers (it refuses instead).
"""

from __future__ import annotations

import os
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.common.events.catalog import (
    AliasEntry,
    CatalogEventV1,
    DeploymentEntry,
    Entity,
    ModelEntry,
    PriceEntry,
)
from services.common.kafka.producer import EventProducer
from services.common.money import parse_micros

SEED_FILE = Path(__file__).resolve().parents[2] / "infra" / "catalog" / "seed.yaml"


class SeedPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    model_id: str
    effective_from: datetime
    input: int
    cached_input: int
    cache_write: int
    output: int

    @field_validator("input", "cached_input", "cache_write", "output", mode="before")
    @classmethod
    def _money(cls, value: object) -> int:
        return parse_micros(value, "price")

    def entry(self) -> PriceEntry:
        return PriceEntry(
            id=self.id, model_id=self.model_id, effective_from=self.effective_from,
            input_micros_per_mtok=self.input, cached_input_micros_per_mtok=self.cached_input,
            cache_write_micros_per_mtok=self.cache_write, output_micros_per_mtok=self.output,
        )


class SeedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[ModelEntry] = Field(default_factory=list)
    deployments: list[DeploymentEntry] = Field(default_factory=list)
    prices: list[SeedPrice] = Field(default_factory=list)
    aliases: list[AliasEntry] = Field(default_factory=list)


def load_seed(path: Path = SEED_FILE, environ: dict[str, str] | None = None) -> list[Entity]:
    """Parse and validate the seed; ``${NAME}`` in deployment endpoints comes from ``environ``."""
    env = dict(os.environ) if environ is None else environ
    raw: Any = yaml.safe_load(path.read_text())
    for dep in raw.get("deployments", []):
        try:
            dep["endpoint"] = string.Template(dep["endpoint"]).substitute(env)
        except KeyError as exc:
            raise ValueError(f"deployment {dep.get('id')}: endpoint needs ${{{exc.args[0]}}}") from None
    seed = SeedFile.model_validate(raw)
    return [*seed.models, *seed.deployments, *(p.entry() for p in seed.prices), *seed.aliases]


_TABLES = {"model": "models", "deployment": "deployments", "alias": "aliases", "price": "prices"}


def _columns(entity: Entity) -> dict[str, Any]:
    """Column → value; names come from our own pydantic models (never from input), so the SQL
    built from them below cannot be injected."""
    fields = entity.model_dump(exclude={"kind", "id"})
    return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


async def _upsert(conn: asyncpg.Connection, entity: Entity) -> int:
    """Store one entity; return its version (bumped when its content changed)."""
    table = _TABLES[entity.kind]
    fields = _columns(entity)
    row = await conn.fetchrow(f"SELECT * FROM {table} WHERE id = $1", entity.id)  # noqa: S608
    if row is None:
        cols = ", ".join(fields)
        marks = ", ".join(f"${i}" for i in range(2, len(fields) + 2))
        sql = f"INSERT INTO {table} (id, {cols}) VALUES ($1, {marks})"  # noqa: S608
        await conn.execute(sql, entity.id, *fields.values())
        return 1
    current = {k: list(row[k]) if isinstance(row[k], list | tuple) else row[k] for k in fields}
    if current == fields:
        return int(row.get("version", 1))
    if isinstance(entity, PriceEntry):
        raise ValueError(f"price {entity.id} already exists with other numbers; add a new price version")
    sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(fields, start=2))
    sql = f"UPDATE {table} SET {sets}, version = version + 1, updated_at = now() WHERE id = $1"  # noqa: S608
    return int(await conn.fetchval(sql + " RETURNING version", entity.id, *fields.values()))


async def seed(dsn: str, producer: EventProducer, entities: list[Entity]) -> int:
    """Apply ``entities`` in one transaction, then publish them all; return how many."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            versions = [await _upsert(conn, e) for e in entities]
    finally:
        await conn.close()
    now = datetime.now(UTC)
    for entity, version in zip(entities, versions, strict=True):
        event = CatalogEventV1(version=version, entity=entity, updated_at=now)
        await producer.publish("catalog.v1", event.record_key, event)
    return len(entities)
