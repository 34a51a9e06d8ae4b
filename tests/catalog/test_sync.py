"""Sync against the real database and Kafka, from files and from the local replaying upstream: what
applies, what is held for review, what a hostile feed changes (nothing) and how the report says why."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.catalog.sync.sources import SyncSource
from tests.catalog.conftest import ADMIN, Catalog, dump
from tests.upstream.harness import UpstreamServer, upstream  # noqa: F401 - session fixture

M, C = "/v1/manage/models", "/v1/manage/catalog"
FEEDS = Path(__file__).parent / "feeds"


def uid(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:8]}"


async def priced_model(catalog: Catalog, input_usd: str = "1.00", output_usd: str = "2.00") -> str:
    model_id = uid("sync")
    await catalog.ok(ADMIN, "PUT", f"{M}/{model_id}", {"display_name": model_id, "context_length": 8192,
                                                       "max_output_tokens": 1024})
    await catalog.ok(ADMIN, "POST", f"{M}/{model_id}/prices", {"input": input_usd, "output": output_usd})
    return model_id


def litellm_file(tmp_path: Path, entries: dict[str, Any] | str | bytes) -> Path:
    path = tmp_path / f"feed-{uuid.uuid4().hex[:6]}.json"
    if isinstance(entries, bytes):
        path.write_bytes(entries)
    else:
        path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    return path


def per_token(usd_per_mtok: str) -> str:
    """USD per 1M tokens → the per-token JSON number text LiteLLM writes (exact, as text)."""
    return format(Decimal(usd_per_mtok) / 1_000_000, "f")


def entry(input_usd: str, output_usd: str, **extra: Any) -> str:
    fields = {"litellm_provider": "openai", "mode": "chat", **extra}
    body = ", ".join(f'"{k}": {json.dumps(v)}' for k, v in fields.items())
    return f'{{"input_cost_per_token": {per_token(input_usd)}, "output_cost_per_token": {per_token(output_usd)}, {body}}}'


def feed_text(**entries: str) -> str:
    return "{" + ", ".join(f'"{name}": {value}' for name, value in entries.items()) + "}"


async def run(catalog: Catalog, source: SyncSource, body: dict[str, Any] | None = None, **config: Any) -> dict[str, Any]:
    return await catalog.with_sources(source, **config).ok(ADMIN, "POST", f"{C}/sync", {"source": source.name, **(body or {})})


async def test_the_litellm_sample_agrees_with_the_seed_but_for_one_batch_discount(catalog: Catalog) -> None:
    source = SyncSource(name="litellm", format="litellm", file=FEEDS / "litellm_sample.json")
    report = await run(catalog, source)
    assert report["status"] == "applied" and report["error"] is None
    assert [(a["model_id"], a["change"], a["price"]["batch_discount"]) for a in report["applied"]] == [
        ("gpt-4o-mini", "price", "50")]
    # the embedding model's price too (the feed's batch price is input-only, so it says no discount)
    assert report["unchanged"] == 4 and report["ignored_unknown"] == ["azure/gpt-4o"]
    assert report["skipped"] == 3 and report["held"] == []
    new_id = report["applied"][0]["price_id"]
    seen = catalog.seen
    await seen.until(lambda: (p := seen.view.current_price("gpt-4o-mini")) is not None and p.id == new_id, 2.0)
    price = seen.view.current_price("gpt-4o-mini")
    assert price is not None and (price.input_micros_per_mtok, price.batch_discount_bps) == (150_000, 5000)
    trail = await catalog.ok(ADMIN, "GET", f"{C}/audit", query=f"kind=price&entity_id={new_id}")
    assert trail["data"][0]["actor"] == "sync:litellm" and trail["data"][0]["action"] == "create"
    again = await run(catalog, source)
    assert again["status"] == "unchanged" and again["applied"] == []
    runs = await catalog.ok(ADMIN, "GET", f"{C}/sync", query="source=litellm")
    assert [r["report"]["status"] for r in runs["data"][:2]] == ["unchanged", "applied"]


async def test_a_price_jump_beyond_the_bound_is_held_for_review_then_approved_or_rejected(
    catalog: Catalog, tmp_path: Path
) -> None:
    model_id = await priced_model(catalog)
    before = await catalog.ok(ADMIN, "GET", f"{M}/{model_id}")
    source = SyncSource(name=uid("feed"), format="litellm",
                        file=litellm_file(tmp_path, feed_text(**{model_id: entry("1.00", "25.00")})))
    report = await run(catalog, source)
    assert report["status"] == "held" and report["applied"] == []
    (held,) = report["held"]
    assert held["model_id"] == model_id and "more than ×2" in held["reasons"][0] and "output" in held["reasons"][0]
    assert held["current"]["output"] == "2.000000" and held["proposed"]["output"] == "25.000000"
    assert (await catalog.ok(ADMIN, "GET", f"{M}/{model_id}"))["price"] == before["price"]  # not applied
    again = await run(catalog, source)
    assert again["held"][0]["change_id"] == held["change_id"]  # the same open change, not a second one
    pending = await catalog.ok(ADMIN, "GET", f"{C}/pending", query="limit=100")
    mine = [p for p in pending["data"] if p["model_id"] == model_id]
    assert [p["id"] for p in mine] == [held["change_id"]] and mine[0]["status"] == "pending"

    approved = await catalog.ok(ADMIN, "POST", f"{C}/pending/{held['change_id']}/approve", {})
    assert approved["status"] == "approved" and approved["decided_by"] == "admin"
    seen = catalog.seen
    await seen.until(lambda: (p := seen.view.current_price(model_id)) is not None
                     and p.id == approved["applied_price_id"], 2.0)
    assert seen.view.current_price(model_id).output_micros_per_mtok == 25_000_000  # type: ignore[union-attr]
    status, answer = await catalog.call(ADMIN, "POST", f"{C}/pending/{held['change_id']}/reject", {})
    assert status == 409 and answer["error"]["code"] == "already_decided"

    source = source.model_copy(update={"file": litellm_file(tmp_path, feed_text(**{model_id: entry("0", "25.00")}))})
    zero = await run(catalog, source)
    (held_zero,) = zero["held"]
    assert held_zero["reasons"] == ["zero price for a paid model: input 1.000000 → 0.000000 USD per 1M tokens"]
    rejected = await catalog.ok(ADMIN, "POST", f"{C}/pending/{held_zero['change_id']}/reject", {"reason": "feed bug"})
    assert rejected["status"] == "rejected" and rejected["applied_price_id"] is None
    assert seen.view.current_price(model_id).input_micros_per_mtok == 1_000_000  # type: ignore[union-attr]
    trail = await catalog.ok(ADMIN, "GET", f"{C}/audit", query=f"kind=pending_change&entity_id={held_zero['change_id']}")
    assert [r["action"] for r in trail["data"]] == ["rejected", "held"] and trail["data"][0]["note"] == "feed bug"


async def test_a_change_within_the_bound_applies_as_a_new_version(catalog: Catalog, tmp_path: Path) -> None:
    model_id = await priced_model(catalog)
    source = SyncSource(name=uid("feed"), format="litellm",
                        file=litellm_file(tmp_path, feed_text(**{model_id: entry("1.50", "2.00")})))
    dry = await run(catalog, source, {"dry_run": True})
    assert dry["status"] == "dry_run" and (await catalog.ok(ADMIN, "GET", f"{M}/{model_id}/prices"))["data"][-1][
        "input"] == "1.000000"
    report = await run(catalog, source)
    assert [a["model_id"] for a in report["applied"]] == [model_id]
    prices = await catalog.ok(ADMIN, "GET", f"{M}/{model_id}/prices")
    assert [(p["input"], p["status"]) for p in prices["data"]] == [("1.000000", "superseded"), ("1.500000", "in_force")]
    assert prices["data"][-1]["source"] == f"sync:{source.name}"


def _hostile(known: str) -> list[tuple[str, bytes, str]]:
    return [
        ("10 MB of junk", b"\x00\xff junk " * 1_400_000, "larger than the 8388608-byte cap"),
        ("not UTF-8", b"\xff\xfe" * 1000, "not UTF-8"),
        ("not JSON", b"junk " * 1000, "not JSON"),
        ("NaN", feed_text(**{known: '{"input_cost_per_token": NaN, "output_cost_per_token": 1}'}).encode(), "not JSON"),
        ("nested", b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        ("wrong shape", b"[1, 2, 3]", "JSON object keyed by model name"),
        ("wrong types", feed_text(**{known: '{"input_cost_per_token": "cheap", "output_cost_per_token": 1e-6}'}).encode(),
         "input_cost_per_token is not a number"),
        ("negative", feed_text(**{known: entry("-1.00", "2.00")}).encode(), "input_cost_per_token is negative"),
        ("absurd", feed_text(**{known: entry("1.00", "5000000")}).encode(), "above the largest accepted price"),
        ("one bad among good", feed_text(**{"gpt-4.1": entry("1.90", "8.00"), known: entry("-1", "2")}).encode(),
         "is negative"),
    ]


@pytest.mark.parametrize("case", range(10), ids=[c[0] for c in _hostile("m")])
async def test_a_malformed_or_hostile_feed_changes_nothing_and_reports_why(
    catalog: Catalog, tmp_path: Path, case: int
) -> None:
    known = await priced_model(catalog)
    name, content, reason = _hostile(known)[case]
    source = SyncSource(name=uid("hostile"), format="litellm", file=litellm_file(tmp_path, content))
    conn = await asyncpg.connect(catalog.dsn)
    try:
        before = await dump(conn)
        report = await run(catalog, source, max_bytes=8 * 1024 * 1024)
        assert await dump(conn) == before, name
        recorded = await conn.fetchval("SELECT status FROM sync_runs WHERE source = $1", source.name)
    finally:
        await conn.close()
    assert report["status"] == "failed" and report["applied"] == [] and report["held"] == []
    why = report["error"] + " " + " ".join(f"{e['name']}: {e['reason']}" for e in report["errors"])
    assert reason in why, why
    assert recorded == "failed"
    if report["errors"]:
        assert report["error"].endswith("nothing applied") and report["errors"][0]["name"] == known


async def test_unknown_models_follow_the_policy(catalog: Catalog, tmp_path: Path) -> None:
    ignored, disabled, served = uid("new"), uid("new"), uid("new")
    document = {"data": [
        {"id": f"acme/{name}", "name": f"Acme {name}", "context_length": 65536,
         "pricing": {"prompt": "0.000001", "completion": "0.000002"},
         "top_provider": {"max_completion_tokens": 8192}, "supported_parameters": ["tools"]}
        for name in (ignored, disabled, served)
    ]}
    path = tmp_path / "openrouter.json"
    path.write_text(json.dumps(document))

    def source(name: str, **changes: Any) -> SyncSource:
        return SyncSource(name=uid("or"), format="openrouter", file=path, include=(f"acme/{name}",),
                          strip_prefix="acme/", **changes)

    report = await run(catalog, source(ignored))
    assert report["status"] == "unchanged" and report["ignored_unknown"] == [ignored]
    assert (await catalog.call(ADMIN, "GET", f"{M}/{ignored}"))[0] == 404

    report = await run(catalog, source(disabled, unknown_models="add-disabled"))
    (added,) = report["applied"]
    assert (added["model_id"], added["change"], added["enabled"]) == (disabled, "model_added", False)
    assert added["note"] == "added disabled: the unknown-model policy is add-disabled"
    stored = await catalog.ok(ADMIN, "GET", f"{M}/{disabled}")
    assert not stored["enabled"] and stored["context_length"] == 65536 and stored["price"]["input"] == "1.000000"
    assert stored["tags"] == [f"sync:{report['source']}"]

    report = await run(catalog, source(served, endpoint="https://openrouter.example/api/v1",
                                       credentials_env="OPENROUTER_API_KEY"), policy="add")
    assert report["applied"][0]["enabled"] is True
    seen = catalog.seen
    await seen.until(lambda: served in seen.view.models and seen.routing.chain(served) != []
                     and seen.view.current_price(served) is not None, 2.0)  # all three records applied
    (deployment,) = seen.routing.chain(served)
    assert (deployment.upstream_model, deployment.endpoint, deployment.credentials_env) == (
        f"acme/{served}", "https://openrouter.example/api/v1", "OPENROUTER_API_KEY")
    assert seen.view.current_price(served).output_micros_per_mtok == 2_000_000  # type: ignore[union-attr]
    assert disabled not in seen.view.models


async def test_a_provider_model_list_is_read_from_the_local_upstream(
    catalog: Catalog, upstream: UpstreamServer  # noqa: F811
) -> None:
    ghost = await priced_model(catalog)
    await catalog.ok(ADMIN, "PUT", f"{M}/{ghost}/deployments/{ghost}-local", {
        "backend": "openai", "endpoint": upstream.openai_base_url, "upstream_model": ghost})
    openai_list = SyncSource(name=uid("upstream"), format="openai-models", url=upstream.openai_base_url,
                             unknown_models="add-disabled")
    report = await run(catalog, openai_list)
    assert report["entries"] == 1 and report["unchanged"] == 1  # it lists gpt-4o-mini, which we have
    assert report["missing_upstream"] == [ghost] and report["applied"] == []

    anthropic_list = SyncSource(name=uid("upstream"), format="openai-models", url=upstream.anthropic_base_url + "/v1",
                                backend="anthropic", unknown_models="add-disabled",
                                credentials_env="TOLLGATE_TEST_NO_SUCH_VARIABLE")
    report = await run(catalog, anthropic_list)
    assert [(a["model_id"], a["enabled"], a["note"]) for a in report["applied"]] == [
        ("claude-sonnet-4-20250514", False, "added disabled: the unknown-model policy is add-disabled")]
    stored = await catalog.ok(ADMIN, "GET", f"{M}/claude-sonnet-4-20250514")
    assert stored["display_name"] == "Claude Sonnet 4" and stored["deployments"][0]["backend"] == "anthropic"

    down = SyncSource(name=uid("down"), format="openai-models", url="http://127.0.0.1:9/v1")
    report = await run(catalog, down)
    assert report["status"] == "failed" and report["error"].startswith("cannot fetch the feed")
