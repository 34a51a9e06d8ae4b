"""Statements end to end on the real servers: usage through metering's consumer and usage API, the
ledger through the ledger's own ``post``, closing through the close job, and the API's answers."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from services.billing.statements.close import close_due
from services.common.manage.context import Caller
from services.common.money import format_micros, parse_micros
from tests.billing.conftest import ADMIN
from tests.billing.statements.conftest import Api
from tests.metering.factory import totals, usage

NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
MODELS = ("gpt-4o-mini", "claude-sonnet-4-5")
USAGE_FIELDS = ("requests", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")


def events_for(account: str, keys: tuple[str, ...], start: datetime, n: int) -> list[dict[str, Any]]:
    """``n`` requests spread over both models and every key, from ``start`` on, one every 7 hours."""
    return [usage(account_id=account, key_id=keys[i % len(keys)], model=MODELS[(i // len(keys)) % 2],
                  started_at=start + timedelta(hours=7 * i),
                  tokens={"input": 100 + 37 * i, "cached_input": 10 * (i % 4), "cache_write": 3 * (i % 3),
                          "output": 20 + 11 * i})
            for i in range(n)]


def expected(events: list[dict[str, Any]]) -> dict[str, Any]:
    t = totals(events)
    return {**{f: t[f] for f in USAGE_FIELDS}, "cost": format_micros(t["cost_micros"])}


def usage_of(row: dict[str, Any]) -> dict[str, Any]:
    return {f: row[f] for f in (*USAGE_FIELDS, "cost")}


def signed(amount: str) -> int:
    return -parse_micros(amount[1:]) if amount.startswith("-") else parse_micros(amount)


def added(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {f: sum(r[f] for r in rows) for f in USAGE_FIELDS}
    out["cost"] = format_micros(sum(parse_micros(r["cost"]) for r in rows))
    return out


async def test_usage_total_is_the_sum_of_its_lines_and_metering_s_total_for_the_period(api: Api) -> None:
    account = await api.account()
    keys = (f"key_{account}_a", f"key_{account}_b", f"key_{account}_c")
    inside = events_for(account, keys, NOV + timedelta(hours=1), 24)
    outside = [usage(account_id=account, key_id=keys[0], started_at=NOV - timedelta(seconds=30)),
               usage(account_id=account, key_id=keys[0], started_at=DEC)]  # the bounds: [Nov 1, Dec 1)
    await api.metering.ingest(inside + outside)

    body = await api.statement(account, "2026-11")
    section = body["usage"]
    assert (body["status"], body["from"], body["to"]) == ("open", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
    assert len(section["lines"]) == 6  # 3 keys x 2 models
    for line in section["lines"]:
        mine = [e for e in inside if (e["model_served"], e["key_id"]) == (line["model"], line["key_id"])]
        assert usage_of(line) == expected(mine)
    assert added(section["lines"]) == usage_of(section["total"]) == expected(inside)
    assert added(section["by_model"]) == added(section["by_key"]) == expected(inside)
    assert {r["model"] for r in section["by_model"]} == set(MODELS)
    reference = await api.metering_totals(account, NOV, DEC)
    assert usage_of(reference) == usage_of(section["total"])
    assert section["late"]["requests"] == 0 and section["late"]["cost"] == "0.000000"


async def test_ledger_closing_is_opening_plus_the_lines_and_the_next_opening(api: Api) -> None:
    account = await api.account()
    await api.post(account, "topup", 10_000_000, NOV - timedelta(days=20))  # before: the opening
    await api.post(account, "grant", 5_000_000, NOV + timedelta(days=2))
    await api.post(account, "charge", -1_250_000, NOV + timedelta(days=3))
    await api.post(account, "charge", -250_001, NOV + timedelta(days=9))
    await api.post(account, "topup", 20_000_000, NOV + timedelta(days=10))
    await api.post(account, "refund", -3_000_000, NOV + timedelta(days=11))
    await api.post(account, "adjustment", 123, DEC - timedelta(microseconds=1))
    await api.post(account, "topup", 7_000_000, DEC)  # after: December's

    ledger = (await api.statement(account, "2026-11"))["ledger"]
    lines = {line["kind"]: (line["count"], line["amount"]) for line in ledger["lines"]}
    assert ledger["opening_balance"] == "10.000000"
    assert lines == {"charge": (2, "-1.500001"), "topup": (1, "20.000000"), "grant": (1, "5.000000"),
                     "refund": (1, "-3.000000"), "adjustment": (1, "0.000123"), "expiry": (0, "0.000000")}
    assert ledger["closing_balance"] == "30.500122"
    assert signed(ledger["closing_balance"]) == signed(ledger["opening_balance"]) + sum(
        signed(a) for _, a in lines.values())
    december = (await api.statement(account, "2026-12"))["ledger"]
    assert december["opening_balance"] == ledger["closing_balance"]
    assert december["closing_balance"] == "37.500122"


async def test_closing_twice_at_once_closes_each_statement_once_and_it_never_changes(api: Api) -> None:
    account = await api.account()
    keys = (f"key_{account}_a", f"key_{account}_b")
    await api.metering.ingest(events_for(account, keys, NOV + timedelta(days=1), 8))
    await api.post(account, "topup", 50_000_000, NOV + timedelta(days=1))
    await api.post(account, "charge", -2_000_000, NOV + timedelta(days=2))
    live = await api.statement(account, "2026-11")
    conf = api.manage.deps.statements
    assert conf is not None

    runs = await asyncio.gather(*(close_due(api.manage.pool, conf.metering, api.clock.now, conf.grace)
                                  for _ in range(2)))
    again = await close_due(api.manage.pool, conf.metering, api.clock.now, conf.grace)
    mine = [p for run in (*runs, again) for a, p in run.closed if a == account]
    assert mine == ["2026-11"]  # closed once, by one of the runs; December is not finished
    async with api.manage.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM statements WHERE account_id = $1", account) == 1

    closed = await api.statement(account, "2026-11")
    assert closed["status"] == "closed" and closed["closed_at"] is not None
    assert {**closed, "status": "open", "closed_at": None} == live

    # late: usage and a charge for November arrive after it closed
    late = [usage(account_id=account, key_id=keys[0], started_at=NOV + timedelta(days=29),
                  tokens={"input": 5000, "output": 700})]
    await api.metering.ingest(late)
    await api.post(account, "charge", -333_333, NOV + timedelta(days=29))
    assert await api.statement(account, "2026-11") == closed  # a closed statement never changes

    december = await api.statement(account, "2026-12")  # the next one bills what came late
    assert usage_of(december["usage"]["late"]) == expected(late)
    assert december["usage"]["total"]["requests"] == 0
    assert december["ledger"]["opening_balance"] == closed["ledger"]["closing_balance"] == "48.000000"
    charges = next(line for line in december["ledger"]["lines"] if line["kind"] == "charge")
    assert (charges["count"], charges["amount"]) == (1, "-0.333333")
    assert december["ledger"]["closing_balance"] == "47.666667"

    # the operator's on-demand close, once December is past its grace: late items stay on December
    api.clock.now = datetime(2027, 1, 2, 1, 0, tzinfo=UTC)
    try:
        status, run = await api.call(Caller(account_id=account), "POST", "/v1/manage/billing/close")
        assert status == 403 and run["error"]["code"] == "admin_only"
        status, run = await api.call(ADMIN, "POST", "/v1/manage/billing/close")
        assert status == 200 and {"account_id": account, "period": "2026-12"} in run["closed"]
    finally:
        api.clock.now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    closed_december = await api.statement(account, "2026-12")
    assert {**closed_december, "status": "open", "closed_at": None} == december


async def test_csv_is_the_json_statement_as_a_download(api: Api) -> None:
    account = await api.account()
    keys = (f"key_{account}_a", f"key_{account}_b")
    await api.metering.ingest(events_for(account, keys, NOV + timedelta(days=3), 6))
    await api.post(account, "topup", 4_000_000, NOV + timedelta(days=3))
    body = await api.statement(account, "2026-11")

    path = f"/v1/manage/accounts/{account}/statements/2026-11"
    by_suffix = await api.raw(ADMIN, "GET", path + ".csv")
    by_query = await api.raw(ADMIN, "GET", path, "format=csv")
    assert by_suffix == by_query
    assert by_suffix.status == 200 and by_suffix.media_type.startswith("text/csv")
    assert by_suffix.filename == f"statement-{account}-2026-11.csv"
    rows = list(csv.DictReader(io.StringIO(by_suffix.body.decode())))
    assert {(r["account_id"], r["period"]) for r in rows} == {(account, "2026-11")}
    lines = [r for r in rows if r["section"] == "usage"]
    assert [(r["model"], r["key_id"], int(r["requests"]), int(r["output_tokens"]), r["amount"]) for r in lines] == [
        (line["model"], line["key_id"], line["requests"], line["output_tokens"], line["cost"])
        for line in body["usage"]["lines"]]
    [total] = [r for r in rows if r["section"] == "usage_total"]
    assert {f: int(total[f]) for f in USAGE_FIELDS} == {f: body["usage"]["total"][f] for f in USAGE_FIELDS}
    assert total["amount"] == body["usage"]["total"]["cost"]
    ledger = {r["kind"]: (int(r["count"]), r["amount"]) for r in rows if r["section"] == "ledger"}
    assert ledger == {line["kind"]: (line["count"], line["amount"]) for line in body["ledger"]["lines"]}
    [opening] = [r["amount"] for r in rows if r["section"] == "opening_balance"]
    [closing] = [r["amount"] for r in rows if r["section"] == "closing_balance"]
    assert (opening, closing) == (body["ledger"]["opening_balance"], body["ledger"]["closing_balance"])


async def test_another_tenant_s_statements_answer_404_and_a_parent_sees_its_sub_account(api: Api) -> None:
    parent = await api.account("parent")
    child = await api.account("child", parent_id=parent)
    stranger = await api.account("stranger")
    for path in (f"/v1/manage/accounts/{child}/statements", f"/v1/manage/accounts/{child}/statements/2026-11",
                 f"/v1/manage/accounts/{child}/statements/2026-11.csv"):
        refused = await api.raw(Caller(account_id=stranger, key_id="k"), "GET", path)
        assert refused.status == 404 and orjson.loads(refused.body)["error"]["code"] == "account_not_found", path
        assert (await api.raw(Caller(account_id=parent, key_id="k"), "GET", path)).status == 200, path
    status, _ = await api.call(Caller(account_id=child, key_id="k"), "GET",
                               f"/v1/manage/accounts/{parent}/statements/2026-11")
    assert status == 404  # a sub-account does not see its parent


async def test_bad_periods_answer_400_in_the_api_s_error_format(api: Api) -> None:
    account = await api.account()
    for period in ("2026-13", "2026-1", "november", "2026-11-05..2026-11-01", "2026-02-30..2026-03-01",
                   "2024-01-01..2026-01-01", "1999-12"):
        status, body = await api.call(ADMIN, "GET", f"/v1/manage/accounts/{account}/statements/{period}")
        assert status == 400, period
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == "period", body
    status, body = await api.call(ADMIN, "GET", f"/v1/manage/accounts/{account}/statements/2026-11", "format=xml")
    assert status == 400 and body["error"]["param"] == "format"


async def test_a_range_of_days_and_the_list_of_months(api: Api) -> None:
    account = await api.account()
    keys = (f"key_{account}_a",)
    events = events_for(account, keys, NOV + timedelta(days=5), 10)  # Nov 6 .. Nov 8, every 7 h
    await api.metering.ingest(events)
    body = await api.statement(account, "2026-11-06..2026-11-07")  # both days included: [Nov 6, Nov 8)
    assert (body["from"], body["to"]) == ("2026-11-06T00:00:00Z", "2026-11-08T00:00:00Z")
    within = [e for e in events if datetime.fromisoformat(e["started_at"]) < NOV + timedelta(days=7)]
    assert usage_of(body["usage"]["total"]) == expected(within) and 0 < len(within) < len(events)

    status, listed = await api.call(ADMIN, "GET", f"/v1/manage/accounts/{account}/statements")
    assert status == 200
    assert [(s["period"], s["status"]) for s in listed["data"]][:2] == [("2026-12", "open"), ("2026-11", "open")]
