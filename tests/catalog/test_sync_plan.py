"""The feed formats and the sync plan, without I/O: every recorded sample parses to exact micros, a bad
entry is named with its reason, and the sanity bounds decide apply / hold / ignore."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.catalog.records import ModelRecord, PriceRecord
from services.catalog.sync import litellm, openai_models, openrouter
from services.catalog.sync.feed import FeedError, FeedPrice
from services.catalog.sync.fetch import parse_json
from services.catalog.sync.plan import CatalogState, hold_reasons, make_plan, merged
from services.catalog.sync.sources import SyncSource

FEEDS = Path(__file__).parent / "feeds"
MAX = 1_000_000_000
LITELLM = SyncSource(name="litellm", format="litellm", file=FEEDS / "litellm_sample.json")
OPENROUTER = SyncSource(name="openrouter", format="openrouter", file=FEEDS / "openrouter_sample.json",
                        strip_prefix="openai/", include=("openai/*",))
MODELS = SyncSource(name="openai", format="openai-models", url="https://api.example.com/v1")


def load(name: str) -> Any:
    return parse_json((FEEDS / name).read_bytes())


def price(model_id: str, *amounts: int) -> PriceRecord:
    i, c, w, o, b = (*amounts, 0, 0, 0, 0, 0)[:5] if len(amounts) < 5 else amounts
    return PriceRecord(id=f"{model_id}-p", model_id=model_id, effective_from=datetime(2025, 1, 1, tzinfo=UTC),
                       input_micros_per_mtok=i, cached_input_micros_per_mtok=c, cache_write_micros_per_mtok=w,
                       output_micros_per_mtok=o, batch_discount_bps=b)


def state(*prices: PriceRecord, upstream: dict[str, str] | None = None) -> CatalogState:
    ids = {p.model_id for p in prices}
    models = {m: ModelRecord(id=m, display_name=m, context_length=8, max_output_tokens=8) for m in ids}
    return CatalogState(models=models, aliases=frozenset({"gpt-4o-2024-08-06"}), upstream=upstream or {},
                        prices={p.model_id: p for p in prices})


def test_the_litellm_sample_parses_to_exact_micros_and_skips_what_is_not_token_priced() -> None:
    feed = litellm.parse(load("litellm_sample.json"), LITELLM, MAX)
    entries = {e.name: e for e in feed.entries}
    assert feed.errors == []
    assert set(entries) == {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "azure/gpt-4o", "claude-sonnet-4-5",
                            "text-embedding-3-small"}
    assert feed.skipped == 3  # sample_spec, dall-e-3 (images), whisper-1 (audio)
    assert entries["gpt-4o"].price == FeedPrice(input=2_500_000, output=10_000_000, cached_input=1_250_000,
                                                batch_discount_bps=5000)
    assert entries["claude-sonnet-4-5"].price == FeedPrice(input=3_000_000, output=15_000_000, cached_input=300_000,
                                                           cache_write=3_750_000)
    assert entries["gpt-4o"].context_length == 128000 and "vision" in entries["gpt-4o"].capabilities
    only_openai = litellm.parse(load("litellm_sample.json"), LITELLM.model_copy(update={"provider": "openai"}), MAX)
    assert {e.name for e in only_openai.entries} == {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "text-embedding-3-small"}


def test_the_openrouter_sample_parses_decimal_strings_and_maps_ids() -> None:
    feed = openrouter.parse(load("openrouter_sample.json"), OPENROUTER, MAX)
    assert [e.name for e in feed.entries] == ["gpt-4o"] and feed.skipped == 3
    gpt = feed.entries[0]
    assert gpt.upstream_id == "openai/gpt-4o" and gpt.price == FeedPrice(input=2_500_000, output=10_000_000,
                                                                          cached_input=1_250_000)
    assert gpt.max_output_tokens == 16384 and {"tools", "json_mode", "vision"} <= set(gpt.capabilities)
    everything = openrouter.parse(load("openrouter_sample.json"), OPENROUTER.model_copy(
        update={"include": ("*",), "strip_prefix": ""}), MAX)
    assert [(e.name, e.reason) for e in everything.errors] == [("openrouter/auto", "pricing.prompt is negative")]
    llama = next(e for e in everything.entries if e.name == "meta-llama/llama-3.3-70b-instruct")
    assert llama.price == FeedPrice(input=130_000, output=390_000)


def test_a_model_list_is_names_without_prices() -> None:
    feed = openai_models.parse(load("openai_models.json"), MODELS, MAX)
    assert [e.name for e in feed.entries][:2] == ["gpt-4o", "gpt-4o-mini"]
    assert all(e.price is None for e in feed.entries)
    anthropic = {"data": [{"type": "model", "id": "claude-sonnet-4-20250514", "display_name": "Claude Sonnet 4",
                           "created_at": "2025-05-22T00:00:00Z"}], "has_more": False}
    assert openai_models.parse(anthropic, MODELS, MAX).entries[0].display_name == "Claude Sonnet 4"


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"input_cost_per_token": "cheap", "output_cost_per_token": 1e-6}, "input_cost_per_token is not a number"),
        ({"input_cost_per_token": True, "output_cost_per_token": 1e-6}, "input_cost_per_token is not a number"),
        ({"input_cost_per_token": -1e-6, "output_cost_per_token": 1e-6}, "input_cost_per_token is negative"),
        ({"input_cost_per_token": 1, "output_cost_per_token": 1e-6}, "above the largest accepted price"),
        ({"input_cost_per_token": 1e-15, "output_cost_per_token": 1e-6}, "finer than 0.000001 USD per 1M"),
        ({"input_cost_per_token": 1e-6}, "not both"),
        ({"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6, "max_input_tokens": "lots"},
         "max_input_tokens is not an integer"),
        ({"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6, "supports_vision": "yes"},
         "supports_vision is not a boolean"),
        ({"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6, "mode": 7}, "mode is not a string"),
        ([1, 2, 3], "the entry is not an object"),
    ],
)
def test_a_bad_litellm_entry_is_an_error_naming_why(entry: object, reason: str) -> None:
    document = parse_json(json.dumps({"m": entry}).encode())
    feed = litellm.parse(document, LITELLM, MAX)
    assert feed.entries == [] and len(feed.errors) == 1
    assert feed.errors[0].name == "m" and reason in feed.errors[0].reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe junk", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b'{"gpt-4o": {"input_cost_per_token": NaN}}', "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"1" * 5000, "not JSON"),
    ],
)
def test_a_document_that_is_not_json_is_refused_whole(data: bytes, reason: str) -> None:
    with pytest.raises(FeedError, match=reason):
        parse_json(data)


@pytest.mark.parametrize(
    ("parser", "document", "reason"),
    [
        (litellm.parse, [1, 2], "JSON object keyed by model name"),
        (openrouter.parse, {"models": []}, '"data" list'),
        (openai_models.parse, {"data": "gpt-4o"}, '"data" list'),
        (openai_models.parse, {"data": [{"id": str(i)} for i in range(50_001)]}, "more than 50000"),
    ],
)
def test_a_feed_of_the_wrong_shape_is_refused_whole(parser: Any, document: object, reason: str) -> None:
    with pytest.raises(FeedError, match=reason):
        parser(document, MODELS if parser is openai_models.parse else LITELLM, MAX)


def test_prices_within_the_factor_apply_and_jumps_zeros_and_new_charges_are_held() -> None:
    current = price("m", 1_000_000, 500_000, 0, 4_000_000, 5000)
    factor = Decimal(2)
    assert hold_reasons(current, (1_900_000, 500_000, 0, 4_000_000, 5000), factor) == ()
    assert hold_reasons(current, (500_000, 250_000, 0, 2_000_000, 5000), factor) == ()  # exactly ×2: allowed
    jump = hold_reasons(current, (1_000_000, 500_000, 0, 40_000_000, 5000), factor)
    assert len(jump) == 1 and "output" in jump[0] and "more than ×2" in jump[0]
    drop = hold_reasons(current, (100_000, 500_000, 0, 4_000_000, 5000), factor)
    assert "input" in drop[0]  # a fall is as suspicious as a rise
    zero = hold_reasons(current, (0, 0, 0, 4_000_000, 5000), factor)
    assert sum("zero price for a paid model" in r for r in zero) == 2
    assert "becomes paid" in hold_reasons(current, (1_000_000, 500_000, 10, 4_000_000, 5000), factor)[0]
    assert "become free" in hold_reasons(current, (1_000_000, 500_000, 0, 4_000_000, 10_000), factor)[0]


def test_what_the_feed_leaves_out_is_kept_and_a_new_model_never_starts_cheaper_than_its_input() -> None:
    current = price("m", 1, 2, 3, 4, 5)
    assert merged(current, FeedPrice(input=10, output=40)) == (10, 2, 3, 40, 5)
    assert merged(None, FeedPrice(input=10, output=40)) == (10, 10, 10, 40, 0)


def _feed(entries: dict[str, Any]) -> Any:
    """Through JSON text, as a feed arrives (numbers become Decimals, never floats)."""
    return litellm.parse(parse_json(json.dumps(entries).encode()), LITELLM, MAX)


def test_the_plan_applies_holds_ignores_and_refuses_per_the_rules() -> None:
    known = state(price("a", 1_000_000, 1_000_000, 0, 2_000_000), price("b", 1_000_000, 1_000_000, 0, 2_000_000),
                  price("c", 1_000_000, 1_000_000, 0, 2_000_000), upstream={"provider-name-of-c": "c"})
    feed = _feed({
        "a": {"input_cost_per_token": 1.2e-6, "output_cost_per_token": 2e-6},  # within ×2: apply
        "b": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-5},  # ×10: hold
        "provider-name-of-c": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},  # same: unchanged
        "brand-new": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},  # unknown
        "gpt-4o-2024-08-06": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},  # an alias
        "unknown-and-broken": {"input_cost_per_token": "?", "output_cost_per_token": 2e-6},
    })
    plan = make_plan(feed, known, LITELLM, "ignore", Decimal(2))
    assert [p.model_id for p in plan.prices] == ["a"] and [p.model_id for p in plan.held] == ["b"]
    assert plan.unchanged == 1 and sorted(plan.ignored) == ["brand-new", "gpt-4o-2024-08-06"]
    assert plan.errors == [] and plan.other_errors == 1  # broken, but not about anything we have

    added = make_plan(_feed({"brand-new": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}),
                      known, LITELLM, "add", Decimal(2))
    new = added.new_models[0]
    assert new.model.id == "brand-new" and not new.model.enabled and new.deployment is None
    assert new.why_disabled == "nowhere to serve it (the source declares no endpoint)"
    served = LITELLM.model_copy(update={"endpoint": "https://llm.example.com/v1", "credentials_env": "EXAMPLE_KEY"})
    enabled = make_plan(_feed({"brand-new": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}),
                        known, served, "add", Decimal(2)).new_models[0]
    assert enabled.model.enabled and enabled.deployment is not None
    assert enabled.deployment.credentials_env == "EXAMPLE_KEY" and enabled.price == (1_000_000,) * 3 + (2_000_000, 0)
    broken = make_plan(_feed({"a": {"input_cost_per_token": -1e-6, "output_cost_per_token": 2e-6},
                              "b": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}),
                       known, LITELLM, "ignore", Decimal(2))
    assert [e.name for e in broken.errors] == ["a"]  # about a model we have: the run applies nothing


def test_a_model_list_reports_what_the_provider_no_longer_serves() -> None:
    known = CatalogState(models={m: ModelRecord(id=m, display_name=m, context_length=8, max_output_tokens=8)
                                 for m in ("gpt-4o", "gone-model")},
                         aliases=frozenset(), upstream={}, prices={}, served_here=frozenset({"gpt-4o", "gone-model"}))
    plan = make_plan(openai_models.parse(load("openai_models.json"), MODELS, MAX), known, MODELS, "add-disabled",
                     Decimal(2))
    assert plan.missing_upstream == ["gone-model"]
    added = {n.model.id: n for n in plan.new_models}
    assert set(added) == {"gpt-4o-mini", "gpt-4.1", "text-embedding-3-small", "dall-e-3"}
    assert all(not n.model.enabled and n.deployment is not None for n in added.values())
    assert added["gpt-4.1"].deployment.endpoint == "https://api.example.com/v1"  # type: ignore[union-attr]


def test_the_sources_example_in_the_docs_is_valid() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "catalog.md").read_text()
    block = next(b for b in text.split("```json")[1:] if '"format": "litellm"' in b.split("```")[0])
    sources = [SyncSource.model_validate(s) for s in json.loads(block.split("```")[0])]
    assert {s.format for s in sources} == {"litellm", "openrouter", "openai-models"}
