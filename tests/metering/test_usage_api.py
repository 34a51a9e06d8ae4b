"""The usage API: strict validation, tenancy, buckets and money, from the rollups; and over gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import orjson
import pytest
from grpc_health.v1 import _async as health_aio

from infra.stack.ports import free_port
from services.common.errors import AuthenticationFailed
from services.common.manage.context import Caller
from services.common.manage.grpc_server import ManagementService, build_server
from services.common.money import format_micros
from services.metering.api.context import Deps
from services.metering.api.dispatch import dispatch
from services.metering.api.queries import UsageFilter, usage_sql
from services.metering.store.chdb_store import ChdbStore
from services.metering.writer import UsageWriter
from tests.metering.factory import T0, spread, totals, usage
from tests.metering.test_writer import rows_of
from tollgate.manage.v1 import manage_pb2, manage_pb2_grpc

ADMIN = Caller(account_id=None)
ACCT_A = Caller(account_id="acct_a", key_id="key_mgmt_a")
NOW = datetime(2026, 11, 5, 12, 0, 30, tzinfo=UTC)
# 900 events, one every 7 minutes from 2026-11-01 00:00: 4.4 days over accounts a/b/c, 6 keys, 2 models
EVENTS = spread(900, start=datetime(2026, 11, 1, tzinfo=UTC), step=timedelta(minutes=7))


@pytest.fixture
async def api(store: ChdbStore) -> AsyncIterator[Deps]:
    await UsageWriter(store).write(rows_of(EVENTS))
    yield Deps(store, now=lambda: NOW)


async def get(deps: Deps, query: str, caller: Caller | AuthenticationFailed = ADMIN) -> tuple[int, Any]:
    status, body = await dispatch(deps, caller, "GET", "/v1/manage/usage", query, b"")
    return status, orjson.loads(body)


def money(micros: int) -> str:
    return format_micros(micros)


def within(start: datetime, end: datetime, **match: str) -> list[dict[str, Any]]:
    return [e for e in EVENTS if start <= datetime.fromisoformat(e["started_at"]) < end
            and all(e[k] == v for k, v in match.items())]


async def test_totals_for_a_period_match_the_events_to_the_micro_dollar(api: Deps) -> None:
    status, body = await get(api, "from=2026-11-01&to=2026-11-03")
    assert status == 200
    expected = totals(within(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)))
    [bucket] = body["data"]
    [row] = bucket["results"]
    for name in ("requests", "failed_requests", "input_tokens", "cached_input_tokens", "cache_write_tokens",
                 "output_tokens", "reasoning_tokens"):
        assert row[name] == expected[name], name
    assert row["cost"] == money(expected["cost_micros"]) == body["totals"]["cost"]
    assert isinstance(row["cost"], str) and row["cost"].count(".") == 1 and len(row["cost"].split(".")[1]) == 6
    assert (row["account_id"], row["key_id"], row["model"]) == (None, None, None)
    assert (body["from"], body["to"], body["group_by"]) == ("2026-11-01T00:00:00Z", "2026-11-03T00:00:00Z", "none")


@pytest.mark.parametrize(("group_by", "width", "count"), [("day", 86400, 3), ("hour", 3600, 72), ("minute", 60, 1440)])
async def test_a_series_lists_every_bucket_with_its_own_sums(api: Deps, group_by: str, width: int, count: int) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    end = start + timedelta(seconds=width * count)
    status, body = await get(api, f"from={start:%Y-%m-%d}&to={end.isoformat()}&group_by={group_by}&breakdown=model")
    assert status == 200
    assert len(body["data"]) == count
    for i, bucket in enumerate(body["data"]):
        b0 = start + timedelta(seconds=width * i)
        assert bucket["start"] == b0.isoformat().replace("+00:00", "Z")
        by_model = {r["model"]: r for r in bucket["results"]}
        for model in ("gpt-4o-mini", "claude-sonnet-4-5"):
            expected = totals(within(b0, b0 + timedelta(seconds=width), model_served=model))
            if expected["requests"] == 0:
                assert model not in by_model
            else:
                assert (by_model[model]["requests"], by_model[model]["cost"]) == (
                    expected["requests"], money(expected["cost_micros"]))
    assert body["totals"]["requests"] == len(within(start, end))


async def test_a_period_not_on_the_bucket_grid_clips_the_first_and_last_bucket(api: Deps) -> None:
    status, body = await get(api, "from=2026-11-01T10:30:00Z&to=2026-11-03T06:00:00Z&group_by=day")
    assert status == 200
    spans = [(b["start"], b["end"]) for b in body["data"]]
    assert spans == [("2026-11-01T10:30:00Z", "2026-11-02T00:00:00Z"), ("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"),
                     ("2026-11-03T00:00:00Z", "2026-11-03T06:00:00Z")]
    first = within(datetime(2026, 11, 1, 10, 30, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
    assert body["data"][0]["results"][0]["requests"] == len(first)


async def test_breakdown_by_account_key_and_model_and_filters(api: Deps) -> None:
    status, body = await get(api, "from=2026-11-01&to=2026-11-06&breakdown=account,key,model&model=gpt-4o-mini")
    assert status == 200
    rows = body["data"][0]["results"]
    assert {r["model"] for r in rows} == {"gpt-4o-mini"}
    for r in rows:
        assert r["requests"] == len([e for e in EVENTS if e["account_id"] == r["account_id"]
                                     and e["key_id"] == r["key_id"] and e["model_served"] == "gpt-4o-mini"])
    status, body = await get(api, "from=2026-11-01&to=2026-11-06&key_id=key_b1")
    assert body["totals"]["requests"] == len([e for e in EVENTS if e["key_id"] == "key_b1"])


async def test_no_usage_is_every_bucket_with_no_results(api: Deps) -> None:
    status, body = await get(api, "from=2026-10-01&to=2026-10-04&group_by=day")
    assert status == 200
    assert [b["results"] for b in body["data"]] == [[], [], []]
    assert body["totals"]["requests"] == 0 and body["totals"]["cost"] == "0.000000"


async def test_to_defaults_to_the_end_of_the_current_minute(api: Deps) -> None:
    status, body = await get(api, "from=2026-11-05")
    assert status == 200
    assert body["to"] == "2026-11-05T12:01:00Z"


async def test_an_account_key_sees_its_own_account_only(api: Deps) -> None:
    status, own = await get(api, "from=2026-11-01&to=2026-11-06&breakdown=account", ACCT_A)
    assert status == 200
    assert {r["account_id"] for r in own["data"][0]["results"]} == {"acct_a"}
    assert own["totals"]["requests"] == len([e for e in EVENTS if e["account_id"] == "acct_a"])
    status, same = await get(api, "from=2026-11-01&to=2026-11-06&breakdown=account&account_id=acct_a", ACCT_A)
    assert same == own
    for other in ("acct_b", "acct_nope"):  # another tenant and a missing one answer alike
        status, body = await get(api, f"from=2026-11-01&to=2026-11-06&account_id={other}", ACCT_A)
        assert status == 404
        assert body["error"] == {"message": f"No account found with id '{other}'.", "type": "not_found_error",
                                 "param": "account_id", "code": "account_not_found"}
    status, body = await get(api, "from=2026-11-01&to=2026-11-06&key_id=key_b1", ACCT_A)  # b's key
    assert status == 200 and body["totals"]["requests"] == 0


async def test_the_admin_sees_every_account(api: Deps) -> None:
    status, body = await get(api, "from=2026-11-01&to=2026-11-06&breakdown=account")
    assert status == 200
    assert {r["account_id"] for r in body["data"][0]["results"]} == {"acct_a", "acct_b", "acct_c"}
    assert body["totals"]["cost"] == money(totals(EVENTS)["cost_micros"])


@pytest.mark.parametrize(
    ("query", "param", "fragment"),
    [
        ("", "from", "Missing required parameter: 'from'"),
        ("from=yesterday", "from", "is not an RFC 3339 time"),
        ("from=2026-02-30", "from", "not a valid date"),
        ("from=2026-11-01T10:00:00", "from", "needs a UTC offset"),
        ("from=2026-11-01T10:00:30Z", "from", "whole minute"),
        ("from=1700000000", "from", "is not an RFC 3339 time"),
        ("from=1999-12-31", "from", "between 2000-01-01 and 2200-01-01"),
        ("from=2026-11-02&to=2026-11-01", "to", "'to' must be after 'from'"),
        ("from=2026-11-02&to=2026-11-02", "to", "'to' must be after 'from'"),
        ("from=2026-11-01&group_by=week", "group_by", "Input should be 'minute', 'hour', 'day' or 'none'"),
        ("from=2026-11-01&to=2026-11-03&group_by=minute", "group_by", "more than 1440 minute buckets"),
        ("from=2020-01-01&to=2026-01-01&group_by=day", "group_by", "more than 1440 day buckets"),
        ("from=2026-11-01&breakdown=region", "breakdown", "comma-separated list of account, key, model"),
        ("from=2026-11-01&breakdown=key,key", "breakdown", "names a dimension twice"),
        ("from=2026-11-01&account_id=a'b", "account_id", "String should match pattern"),
        ("from=2026-11-01&limit=5", "limit", "Unrecognized request argument supplied: limit"),
        ("from=2026-11-01&from=2026-11-02", "from", "given more than once"),
    ],
)
async def test_bad_queries_answer_400_in_openais_error_shape(api: Deps, query: str, param: str, fragment: str) -> None:
    status, body = await get(api, query)
    assert status == 400
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == param
    assert fragment in body["error"]["message"]


async def test_an_unencoded_plus_offset_is_read_as_meant(api: Deps) -> None:
    status, body = await get(api, "from=2026-11-01T02:00:00+02:00&to=2026-11-02T00:00:00Z")
    assert status == 200 and body["from"] == "2026-11-01T00:00:00Z"


async def test_too_many_rows_is_a_400_not_a_huge_answer(api: Deps, monkeypatch: pytest.MonkeyPatch) -> None:
    import services.metering.api.usage as usage_module

    monkeypatch.setattr(usage_module, "MAX_ROWS", 5)
    status, body = await get(api, "from=2026-11-01&to=2026-11-06&group_by=day&breakdown=key")
    assert status == 400 and body["error"]["code"] == "too_many_rows"


async def test_unknown_routes_methods_and_missing_callers(api: Deps) -> None:
    status, body = await dispatch(api, ADMIN, "POST", "/v1/manage/usage", "from=2026-11-01", b"")
    assert status == 405 and b"allowed: GET" in body
    status, body = await dispatch(api, ADMIN, "GET", "/v1/manage/usage/export", "", b"")
    assert status == 404 and b"unknown_url" in body
    status, body = await dispatch(api, AuthenticationFailed("no key"), "GET", "/v1/manage/usage", "from=2026-11-01", b"")
    assert status == 401 and b"authentication_error" in body
    status, body = await dispatch(api, AuthenticationFailed("no key"), "GET", "/openapi.json", "", b"")
    assert status == 200 and b"/v1/manage/usage" in body  # public


async def test_every_query_of_the_api_is_answered_from_a_rollup(store: ChdbStore) -> None:
    await UsageWriter(store).write(rows_of(spread(50)))
    for start, end in ((T0.replace(hour=0), T0.replace(hour=0) + timedelta(days=2)),
                       (T0, T0 + timedelta(hours=5)), (T0 + timedelta(minutes=1), T0 + timedelta(minutes=99))):
        for group_by in ("none", "minute", "hour", "day"):
            for breakdown in ((), ("model",), ("account", "key", "model")):
                sql = usage_sql(UsageFilter(start, end, "acct_a"), group_by, breakdown, 100)
                await store.query(sql + " SETTINGS force_optimize_projection = 1")  # raises if not


async def test_over_grpc_as_the_edge_calls_it(store: ChdbStore) -> None:
    events = [usage(account_id="acct_g", tokens={"input": 1000, "output": 100}) for _ in range(3)]
    await UsageWriter(store).write(rows_of(events))
    port = free_port()
    server = build_server(ManagementService(Deps(store), dispatch), health_aio.HealthServicer())
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = manage_pb2_grpc.ManagementServiceStub(channel)
            query = "from=2026-11-02&to=2026-11-03"
            reply = await stub.Call(manage_pb2.ManageRequest(
                request_id="req_t", caller=manage_pb2.Caller(account_id="acct_g", key_id="k"), method="GET",
                path="/v1/manage/usage", query=query))
            body = orjson.loads(reply.body)
            assert reply.status == 200
            assert body["totals"]["requests"] == 3
            assert body["totals"]["cost"] == money(totals(events)["cost_micros"]) == "0.000630"  # 3 × (1000 × 0.15 + 100 × 0.60) µ$
            nobody = await stub.Call(manage_pb2.ManageRequest(method="GET", path="/v1/manage/usage", query=query))
            assert nobody.status == 401
            doc = await stub.Call(manage_pb2.ManageRequest(method="GET", path="/openapi.json"))
            assert doc.status == 200 and "/v1/manage/usage" in orjson.loads(doc.body)["paths"]
    finally:
        await server.stop(grace=None)
