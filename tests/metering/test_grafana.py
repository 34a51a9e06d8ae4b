"""Every panel of the Grafana dashboard (infra/grafana/) runs against chDB with rows present and gives
plausible figures — the very figures the events imply. Grafana's macros are expanded the way the
grafana-clickhouse-datasource plugin expands them (pkg/macros/macros.go), with concrete values."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.metering.store.chdb_store import ChdbStore
from services.metering.writer import UsageWriter
from tests.metering.factory import spread, totals
from tests.metering.test_writer import rows_of

GRAFANA = Path(__file__).resolve().parents[2] / "infra" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "tollgate-usage.json"
START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
EVENTS = spread(600, start=START, step=timedelta(seconds=37))  # ~6 h of usage
FROM, TO = START - timedelta(hours=1), START + timedelta(hours=8)  # the dashboard's time range
INTERVAL_S = 300


def panels() -> list[dict[str, Any]]:
    import orjson

    doc = orjson.loads(DASHBOARD.read_bytes())
    out: list[dict[str, Any]] = []
    for panel in doc["panels"]:
        out.extend(panel.get("panels", [panel]))  # rows nest their panels
    return out


def expand(sql: str, variables: dict[str, str], start: datetime = FROM, end: datetime = TO) -> str:
    """Grafana + plugin macro expansion with concrete values; anything left starting with $ is an error."""
    f, t = int(start.timestamp()), int(end.timestamp())
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 >= toDateTime({f}) AND \1 <= toDateTime({t})", sql)
    sql = re.sub(r"\$__timeInterval\(([^)]+)\)", rf"toStartOfInterval(toDateTime(\1), INTERVAL {INTERVAL_S} second)", sql)
    sql = sql.replace("$__fromTime_ms", f"fromUnixTimestamp64Milli({f * 1000})")
    sql = sql.replace("$__toTime_ms", f"fromUnixTimestamp64Milli({t * 1000})")
    sql = sql.replace("$__fromTime", f"toDateTime({f})").replace("$__toTime", f"toDateTime({t})")
    sql = sql.replace("$__interval_s", str(INTERVAL_S))
    for name, value in variables.items():
        sql = sql.replace(f"${{{name}:sqlstring}}", "'" + value.replace("'", "''") + "'")
    assert "$" not in sql, f"unexpanded macro or variable in: {sql}"
    return sql


@pytest.fixture
async def filled(store: ChdbStore) -> ChdbStore:
    await UsageWriter(store).write(rows_of(EVENTS))
    return store


def _sum(rows: list[dict[str, Any]], column: str) -> float:
    return sum(float(r[column]) for r in rows)


def _micros(usd: float) -> int:
    return round(usd * 1_000_000)


def check(title: str, rows: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    """What each panel must show for ``events`` (every panel has a check: a new one needs one here)."""
    want = totals(events)
    durations = [e["duration_ms"] for e in events]
    assert rows, title
    if title == "Requests":
        assert int(rows[0]["requests"]) == want["requests"]
    elif title == "Cost (USD)":
        assert _micros(float(rows[0]["cost_usd"])) == want["cost_micros"]
    elif title == "Error rate":
        assert float(rows[0]["error_rate"]) == pytest.approx(want["failed_requests"] / want["requests"])
    elif title == "Tokens":
        assert int(rows[0]["tokens"]) == sum(want[k] for k in ("input_tokens", "cached_input_tokens",
                                                                 "cache_write_tokens", "output_tokens"))
    elif title == "Requests by model":
        assert _sum(rows, "requests") == want["requests"]
        assert {r["model"] for r in rows} <= {"gpt-4o-mini", "claude-sonnet-4-5"}
    elif title == "Tokens by kind":
        for column, key in (("input", "input_tokens"), ("cached_input", "cached_input_tokens"),
                            ("cache_write", "cache_write_tokens"), ("output", "output_tokens")):
            assert _sum(rows, column) == want[key], column
    elif title == "Cost by model (USD)":
        assert sum(_micros(float(r["cost_usd"])) for r in rows) == want["cost_micros"]
    elif title == "Error rate by model":
        assert all(0 <= float(r["error_rate"]) <= 1 for r in rows)
        assert any(float(r["error_rate"]) > 0 for r in rows)
    elif title.startswith("Latency by model"):
        for r in rows:
            assert min(durations) <= float(r["p50_ms"]) <= float(r["p99_ms"]) <= max(durations)
            assert r["ttft_p50_ms"] is None or 100 <= float(r["ttft_p50_ms"]) <= 150
    elif title in ("Per model", "Per key", "Per account"):
        assert _sum(rows, "requests") == want["requests"]
        assert _sum(rows, "failed") == want["failed_requests"]
        assert sum(_micros(float(r["cost_usd"])) for r in rows) == want["cost_micros"]
        assert _sum(rows, "output_tokens") == want["output_tokens"]
        for r in rows:
            assert 0 <= float(r["error_rate"]) <= 1 and float(r["p50_ms"]) <= float(r["p99_ms"])
    else:
        raise AssertionError(f"panel {title!r} has no check in this test")


def test_the_dashboard_uses_the_provisioned_datasource_only() -> None:
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/clickhouse.yaml").read_text())["datasources"][0]
    assert datasource["type"] == "grafana-clickhouse-datasource"
    assert "password" not in datasource["jsonData"]  # secrets only in secureJsonData, from the environment
    assert datasource["secureJsonData"]["password"].startswith("${")
    titles = [p["title"] for p in panels()]
    assert len(titles) == len(set(titles)) >= 8
    for panel in panels():
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == panel["datasource"]["uid"] == datasource["uid"]
            assert target["editorType"] == "sql" and target["rawSql"].strip()


@pytest.mark.parametrize("account", ["", "acct_b"])
async def test_every_panels_sql_runs_on_chdb_and_shows_what_the_events_imply(filled: ChdbStore, account: str) -> None:
    events = [e for e in EVENTS if not account or e["account_id"] == account]
    variables = {"account": account, "key": "", "model": ""}
    for panel in panels():
        for target in panel["targets"]:
            sql = expand(target["rawSql"], variables)
            rows = await filled.query(sql)
            check(panel["title"], rows, events)
            if "rollup" in panel.get("description", ""):  # answered from a projection, not raw rows
                await filled.query(sql + " SETTINGS force_optimize_projection = 1")


async def test_a_key_and_model_filter_narrow_every_panel(filled: ChdbStore) -> None:
    events = [e for e in EVENTS if e["key_id"] == "key_a0" and e["model_served"] == "gpt-4o-mini"]
    variables = {"account": "", "key": "key_a0", "model": "gpt-4o-mini"}
    for panel in panels():
        if panel["title"].startswith(("Error rate", "Latency")):
            continue  # fine-grained series of a small subset can be empty per bucket
        for target in panel["targets"]:
            check(panel["title"], await filled.query(expand(target["rawSql"], variables)), events)
