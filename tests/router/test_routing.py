from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

from services.common.events.catalog import AliasEntry, CatalogEventV1, DeploymentEntry, ModelEntry
from services.router.routing import RoutingTable

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def event(entity: ModelEntry | DeploymentEntry | AliasEntry, deleted: bool = False) -> CatalogEventV1:
    return CatalogEventV1(version=1, entity=entity, updated_at=NOW, deleted=deleted)


def dep(id_: str, model: str, weight: int = 1, fallback: tuple[str, ...] = ()) -> DeploymentEntry:
    return DeploymentEntry(id=id_, model_id=model, backend="openai", endpoint="http://x", upstream_model=model,
                           weight=weight, fallback=fallback)


def table_with(
    *entities: ModelEntry | DeploymentEntry | AliasEntry, healthy: set[str] | None = None,
    rng: random.Random | None = None,
) -> RoutingTable:
    table = RoutingTable((lambda d: d in healthy) if healthy is not None else (lambda _d: True), rng)
    for e in entities:
        table.apply(f"{e.kind}:{e.id}", event(e))
    return table


def test_each_primary_is_followed_by_its_fallbacks_each_deployment_once() -> None:
    table = table_with(
        dep("a-small", "m", weight=1, fallback=("other",)),
        dep("a-big", "m", weight=5, fallback=("other", "a-small")),
        dep("other", "m2"),
        dep("standby", "m", weight=0),
    )
    chains = {tuple(d.id for d in table.chain("m")) for _ in range(200)}
    assert chains == {("a-big", "other", "a-small", "standby"), ("a-small", "other", "a-big", "standby")}


def test_standby_deployments_come_last_and_serve_a_model_that_has_nothing_else() -> None:
    table = table_with(dep("main", "m", weight=2, fallback=("elsewhere",)), dep("spare", "m", weight=0),
                       dep("elsewhere", "m2"), dep("only-spare", "m3", weight=0))
    assert [d.id for d in table.chain("m")] == ["main", "elsewhere", "spare"]
    assert [d.id for d in table.chain("m3")] == ["only-spare"]


def test_the_first_deployment_is_drawn_in_proportion_to_its_weight() -> None:
    """Weight is each deployment's share of the requests: 3 beside 1 leads three times in four, and a
    standby (weight 0) never leads."""
    table = table_with(
        dep("three", "m", weight=3, fallback=("standby",)), dep("one", "m", weight=1),
        dep("standby", "m", weight=0), rng=random.Random(20261124),
    )
    firsts = Counter(table.chain("m")[0].id for _ in range(4000))
    assert set(firsts) == {"three", "one"}
    assert 2850 < firsts["three"] < 3150, firsts  # 3000 expected; the standard deviation is 27


def test_equal_weights_share_the_requests() -> None:
    table = table_with(dep("gpu-0", "m"), dep("gpu-1", "m"), dep("gpu-2", "m"), rng=random.Random(7))
    firsts = Counter(table.chain("m")[0].id for _ in range(3000))
    assert all(900 < n < 1100 for n in firsts.values()) and len(firsts) == 3, firsts


def test_an_affinity_key_leads_with_the_same_deployment_every_time() -> None:
    """One conversation's prompt cache key: its turns go where its prefix is cached."""
    table = table_with(dep("gpu-0", "m", fallback=("other",)), dep("gpu-1", "m"), dep("gpu-2", "m"),
                       dep("other", "m2"))
    for key in ("conv-1", "conv-2", "tg-0123"):
        chains = {tuple(d.id for d in table.chain("m", key)) for _ in range(50)}
        assert len(chains) == 1, chains
        (only,) = chains
        assert only.index("other") == only.index("gpu-0") + 1  # fallbacks still follow their deployment
    assert len({table.chain("m")[0].id for _ in range(50)}) == 3  # no key: random as before


def test_keys_spread_over_deployments_by_weight() -> None:
    table = table_with(dep("three", "m", weight=3), dep("one", "m", weight=1), dep("standby", "m", weight=0))
    firsts = Counter(table.chain("m", f"key-{i}")[0].id for i in range(4000))
    assert set(firsts) == {"three", "one"}
    assert 2850 < firsts["three"] < 3150, firsts  # 3000 expected; the standard deviation is 27


def test_a_deployment_added_takes_keys_only_for_itself() -> None:
    """Rendezvous hashing: a new server moves about its share of the keys, all of them to itself;
    no key moves between the servers that were already there (which a hash modulo n would do)."""
    table = table_with(dep("gpu-0", "m"), dep("gpu-1", "m"))
    keys = [f"key-{i}" for i in range(3000)]
    before = {k: table.chain("m", k)[0].id for k in keys}
    table.apply("deployment:gpu-2", event(dep("gpu-2", "m")))
    after = {k: table.chain("m", k)[0].id for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert all(after[k] == "gpu-2" for k in moved)
    assert 900 < len(moved) < 1100, len(moved)  # a third expected


def test_a_busy_deployment_passes_a_keys_requests_on_beyond_its_share() -> None:
    """Affinity is bounded: one hot key must not become one overloaded server. Within 125% of its
    weighted share of the attempts running, the key's deployment leads; beyond it, the next one does."""
    table = table_with(dep("a", "m"), dep("b", "m"))
    key = next(f"k{i}" for i in range(100) if table.chain("m", f"k{i}")[0].id == "a")
    assert table.chain("m", key, {"a": 3, "b": 1})[0].id == "a"  # 3 < ceil(1.25 * 5 / 2) = 4
    assert [d.id for d in table.chain("m", key, {"a": 4, "b": 1})] == ["b", "a"]  # 4 < ceil(3.75): no
    assert table.chain("m", key, {"a": 7, "b": 5})[0].id == "a"  # both busy, a within its share (8)


def test_a_deployment_moved_to_another_model_leaves_the_first() -> None:
    table = table_with(dep("d", "m"), dep("e", "m"))
    table.apply("deployment:d", event(dep("d", "m2")))
    assert [d.id for d in table.chain("m")] == ["e"]
    assert [d.id for d in table.chain("m2")] == ["d"]


def test_alias_routes_to_its_target() -> None:
    table = table_with(dep("d1", "model-x"), AliasEntry(id="x-latest", target="model-x"))
    assert [d.id for d in table.chain("x-latest")] == ["d1"]
    assert table.chain("unknown") == []


def test_unhealthy_deployments_go_last_but_stay_in_the_chain() -> None:
    table = table_with(dep("a", "m", weight=3), dep("b", "m", weight=2), healthy={"b"})
    assert [d.id for d in table.chain("m")] == ["b", "a"]


def test_deleted_and_tombstoned_entities_disappear() -> None:
    table = table_with(dep("a", "m"), dep("b", "m"), AliasEntry(id="al", target="m"))
    table.apply("deployment:a", None)
    table.apply("deployment:b", event(dep("b", "m"), deleted=True))
    table.apply("alias:al", None)
    assert table.chain("m") == [] and table.resolve("al") == "al"


def test_prices_are_ignored_by_routing() -> None:
    table = RoutingTable()
    table.apply("price:p1", None)
    assert table.deployments == {}


def test_chat_templates_render_roles_and_the_assistant_cue() -> None:
    import pytest

    from services.common.errors import InvalidRequest
    from services.router.backends import ChatTurn
    from services.router.chat_template import render

    turns = [ChatTurn("system", "Be brief."), ChatTurn("user", "Hi")]
    assert render("chatml", turns) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert render(None, turns) == render("chatml", turns)
    assert render("llama3", turns).endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    with pytest.raises(InvalidRequest):
        render("{{ evil }}", turns)
