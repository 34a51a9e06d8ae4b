"""/ops/usage: the operator's page for the embedded default shows the same figures as the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from starlette.applications import Starlette

from services.common.money import format_micros
from services.metering.ops_page import figures_sql, ops_usage_route
from services.metering.store.chdb_store import ChdbStore
from services.metering.writer import UsageWriter
from tests.metering.factory import spread, totals, usage
from tests.metering.test_grafana import expand, panels
from tests.metering.test_writer import rows_of


async def page(store: ChdbStore, query: str = "") -> httpx.Response:
    app = Starlette(routes=[ops_usage_route(store)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops") as client:
        return await client.get("/ops/usage" + query)


async def test_the_page_shows_requests_errors_tokens_cost_and_latency_per_model_key_and_account(store: ChdbStore) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    events = spread(200, start=now - timedelta(hours=3), step=timedelta(seconds=40))
    old = usage(started_at=now - timedelta(days=3), account_id="acct_old")  # outside the last 24 h
    await UsageWriter(store).write(rows_of([*events, old]))
    reply = await page(store)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
    html = reply.text
    want = totals(events)
    assert format_micros(want["cost_micros"]) in html
    assert f"<td>{want['requests']:,}</td>" in html and f"<td>{want['failed_requests']:,}</td>" in html
    assert f"{100 * want['failed_requests'] / want['requests']:.2f}%" in html
    for name in ("gpt-4o-mini", "claude-sonnet-4-5", "key_a0", "key_c1", "acct_a", "acct_b", "acct_c"):
        assert f"<td>{name}</td>" in html
    assert "acct_old" not in html
    assert "<script" not in html


async def test_the_page_and_the_dashboard_agree_per_model(store: ChdbStore) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    await UsageWriter(store).write(rows_of(spread(300, start=now - timedelta(hours=2), step=timedelta(seconds=20))))
    ours = {r["name"]: r for r in await store.query(figures_sql("model_served", 24))}
    [per_model] = [p for p in panels() if p["title"] == "Per model"]
    theirs = {r["model"]: r for r in await store.query(
        expand(per_model["targets"][0]["rawSql"], {"account": "", "key": "", "model": ""},
               now - timedelta(hours=24), now + timedelta(minutes=1)))}
    assert set(ours) == set(theirs)
    for model, row in ours.items():
        other = theirs[model]
        assert int(row["requests"]) == int(other["requests"])
        assert int(row["failed_requests"]) == int(other["failed"])
        assert int(row["output_tokens"]) == int(other["output_tokens"])
        assert int(row["cost_micros"]) == round(float(other["cost_usd"]) * 1_000_000)


async def test_names_are_escaped_and_bad_hours_refused(store: ChdbStore) -> None:
    await UsageWriter(store).write(rows_of([usage(model="<b>m</b>", started_at=datetime.now(UTC) - timedelta(minutes=5))]))
    html = (await page(store, "?hours=1")).text
    assert "&lt;b&gt;m&lt;/b&gt;" in html and "<b>m</b>" not in html
    for bad in ("0", "-1", "x", "10000", "²", "1" * 5000):
        assert (await page(store, f"?hours={bad}")).status_code == 400
