"""What a sync would do, decided without I/O: the feed's entries against the catalog as it is.

Per feed entry, matched to a catalog model by id (or by a deployment's upstream model name):

* a known model whose price differs → a new price version, unless a sanity bound trips, in which case
  the change is *held* for review: an amount moving by more than the change factor either way, an
  amount becoming zero (a paid model turning free) or a free amount becoming paid;
* a known model whose price is the same → unchanged;
* an unknown model → the unknown-model policy: ``ignore``; ``add-disabled`` (stored, not served);
  ``add`` (served — only when it has a price and somewhere to be served, otherwise added disabled:
  a sync never starts serving a model for free or with nowhere to route it).

Entry errors that concern the catalog (a model it has, or would add) make the whole run apply nothing:
a feed that is wrong about one of our models is not trusted about the others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from pydantic import ValidationError

from services.catalog.records import DeploymentRecord, ModelRecord, PriceRecord
from services.catalog.sync.feed import EntryError, FeedEntry, FeedPrice, ParsedFeed
from services.catalog.sync.sources import Policy, SyncSource
from services.common.money import format_micros

Amounts = tuple[int, int, int, int, int]  # input, cached input, cache write, output, batch discount bps
KIND_NAMES = ("input", "cached_input", "cache_write", "output")
_ID = re.compile(r"^[A-Za-z0-9_.:\-/]{1,128}$")


@dataclass(frozen=True)
class CatalogState:
    models: Mapping[str, ModelRecord]
    aliases: frozenset[str]
    upstream: Mapping[str, str]  # upstream model name → model id (deployments on this source's backend)
    prices: Mapping[str, PriceRecord]  # model id → the version in force
    served_here: frozenset[str] = frozenset()  # models with a deployment at this source's endpoint


@dataclass(frozen=True)
class PriceProposal:
    model_id: str
    amounts: Amounts
    current: PriceRecord | None
    reasons: tuple[str, ...] = ()  # why it is held; empty = apply


@dataclass(frozen=True)
class NewModel:
    model: ModelRecord
    deployment: DeploymentRecord | None
    price: Amounts | None
    why_disabled: str | None


@dataclass
class Plan:
    prices: list[PriceProposal] = field(default_factory=list)
    held: list[PriceProposal] = field(default_factory=list)
    new_models: list[NewModel] = field(default_factory=list)
    unchanged: int = 0
    ignored: list[str] = field(default_factory=list)
    errors: list[EntryError] = field(default_factory=list)
    other_errors: int = 0
    missing_upstream: list[str] = field(default_factory=list)


def merged(current: PriceRecord | None, feed: FeedPrice) -> Amounts:
    """The feed's amounts; a kind it does not state keeps the current amount (a new model: the input
    price for cached input and cache writes — never cheaper than we know — and no batch discount)."""
    if current is not None:
        cached, write, bps = (current.cached_input_micros_per_mtok, current.cache_write_micros_per_mtok,
                              current.batch_discount_bps)
    else:
        cached, write, bps = feed.input, feed.input, 0
    return (
        feed.input, feed.cached_input if feed.cached_input is not None else cached,
        feed.cache_write if feed.cache_write is not None else write, feed.output,
        feed.batch_discount_bps if feed.batch_discount_bps is not None else bps,
    )


def hold_reasons(current: PriceRecord, new: Amounts, factor: Decimal) -> tuple[str, ...]:
    """Why a change from ``current`` to ``new`` must wait for an operator (empty: it may apply)."""
    reasons: list[str] = []
    old = current.amounts()
    for name, before, after in zip(KIND_NAMES, old[:4], new[:4], strict=True):
        shown = f"{name} {format_micros(before)} → {format_micros(after)} USD per 1M tokens"
        if before > 0 and after == 0:
            reasons.append(f"zero price for a paid model: {shown}")
        elif before == 0 and after > 0:
            reasons.append(f"a free amount becomes paid: {shown}")
        elif before > 0 and max(Decimal(after) / before, Decimal(before) / after) > factor:
            reasons.append(f"changes by more than ×{factor}: {shown}")
    share_before, share_after = 10_000 - old[4], 10_000 - new[4]
    if share_before != share_after:
        shown = f"batch discount {old[4] / 100}% → {new[4] / 100}%"
        if share_after == 0 and current.paid:
            reasons.append(f"batch requests of a paid model become free: {shown}")
        elif share_before > 0 and share_after > 0 and max(
            Decimal(share_after) / share_before, Decimal(share_before) / share_after
        ) > factor:
            reasons.append(f"batch price changes by more than ×{factor}: {shown}")
    return tuple(reasons)


def _new_model(entry: FeedEntry, source: SyncSource, policy: Policy) -> NewModel:
    endpoint = source.endpoint or (source.url if source.format == "openai-models" else None)
    deployment = None
    if endpoint is not None:
        deployment = DeploymentRecord(
            id=f"{entry.name[:100].replace('/', '_')}-{source.name}", model_id=entry.name,
            backend=source.backend,
            endpoint=endpoint, upstream_model=entry.upstream_id, credentials_env=source.credentials_env,
        )
    price = merged(None, entry.price) if entry.price is not None else None
    why = ("the unknown-model policy is add-disabled" if policy == "add-disabled"
           else "no price yet" if price is None
           else "nowhere to serve it (the source declares no endpoint)" if deployment is None else None)
    model = ModelRecord(
        id=entry.name, display_name=(entry.display_name or entry.name)[:200],
        description=entry.description or "",
        tags=(f"sync:{source.name}",), input_modalities=entry.input_modalities or ("text",),
        capabilities=entry.capabilities,
        context_length=entry.context_length or source.default_context_length,
        max_output_tokens=entry.max_output_tokens or source.default_max_output_tokens, enabled=why is None,
    )
    return NewModel(model, deployment, price, why)


def make_plan(feed: ParsedFeed, state: CatalogState, source: SyncSource, policy: Policy,
              factor: Decimal) -> Plan:
    plan = Plan()
    seen: set[str] = set()

    def model_id_of(name: str) -> str | None:
        if name in state.models:
            return name
        return state.upstream.get(name)

    for error in feed.errors:  # relevant: a model we have, a model we would add, or a nameless entry
        if error.name is None or model_id_of(error.name) is not None or policy != "ignore":
            plan.errors.append(error)
        else:
            plan.other_errors += 1
    for entry in feed.entries:
        model_id = model_id_of(entry.name)
        key = model_id or entry.name
        if key in seen:
            plan.errors.append(EntryError(entry.name, "the feed lists this model more than once"))
            continue
        seen.add(key)
        if model_id is None:
            if policy == "ignore" or entry.name in state.aliases:
                plan.ignored.append(entry.name)
                continue
            if not _ID.match(entry.name):
                plan.errors.append(EntryError(entry.name, "the name is not a valid catalog model id"))
                continue
            try:
                plan.new_models.append(_new_model(entry, source, policy))
            except ValidationError as exc:
                reason = f"cannot describe it as a model: {exc.errors()[0]['msg']}"
                plan.errors.append(EntryError(entry.name, reason))
            continue
        if entry.price is None:
            plan.unchanged += 1
            continue
        current = state.prices.get(model_id)
        amounts = merged(current, entry.price)
        if current is not None and current.amounts() == amounts:
            plan.unchanged += 1
            continue
        reasons = hold_reasons(current, amounts, factor) if current is not None else ()
        (plan.held if reasons else plan.prices).append(PriceProposal(model_id, amounts, current, reasons))
    if source.format == "openai-models":
        listed = {model_id_of(e.name) or e.name for e in feed.entries}
        plan.missing_upstream = sorted(state.served_here - listed)
    return plan
