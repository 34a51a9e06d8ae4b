"""Billing as a real process: ManagementService over gRPC, keys.v1 within the 2 s of promise 5, the
requests.v1 ``last_used_at`` consumer, the ops endpoints, and a clean exit on SIGTERM."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import orjson
import pytest

from infra.stack.platform import Platform
from infra.stack.services import ServiceProcess
from services.common.events.keys import KeyEventV1
from services.common.events.requests import RequestEventV1
from services.common.kafka.producer import EventProducer
from services.common.kafka.snapshot import CompactedSnapshot
from tests.billing.conftest import client_settings, event_after, leaks
from tests.kafka_helpers import eventually
from tollgate.manage.v1 import manage_pb2, manage_pb2_grpc

ADMIN = manage_pb2.Caller(admin=True)


@pytest.fixture(scope="module")
def billing(platform: Platform) -> Iterator[ServiceProcess]:
    service = platform.services["billing"]
    service.start()
    service.wait_ready()
    yield service
    service.stop()


class Client:
    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = manage_pb2_grpc.ManagementServiceStub(self.channel)

    async def call(self, method: str, path: str, body: Any = None, caller: manage_pb2.Caller | None = ADMIN,
                   query: str = "") -> tuple[int, dict[str, Any]]:
        request = manage_pb2.ManageRequest(
            request_id=f"req_{uuid.uuid4().hex[:12]}", method=method, path=path, query=query,
            body=orjson.dumps(body) if body is not None else b"",
        )
        if caller is not None:
            request.caller.CopyFrom(caller)
        reply = await self.stub.Call(request, timeout=10)
        return reply.status, orjson.loads(reply.body)


@pytest.fixture
async def client(platform: Platform, billing: ServiceProcess) -> Any:
    made = Client(f"127.0.0.1:{platform.config.ports.billing_grpc}")
    yield made
    await made.channel.close()


async def test_keys_made_over_grpc_reach_edges_within_two_seconds_and_last_use_is_recorded(
    platform: Platform, billing: ServiceProcess, client: Client, billing_dsn: str,
    keys_seen: CompactedSnapshot[KeyEventV1],
) -> None:
    status, account = await client.call("POST", "/v1/manage/accounts", {"name": f"grpc-{uuid.uuid4().hex[:6]}"})
    assert status == 201, account
    status, plan = await client.call("POST", "/v1/manage/plans", {"name": "grpc plan", "tokens_per_minute": 999})
    assert status == 201, plan
    status, key = await client.call(
        "POST", "/v1/manage/keys", {"account_id": account["id"], "plan_id": plan["id"], "name": "grpc key"}
    )
    assert status == 201 and key["key"].startswith("tg-"), key
    answered = time.monotonic()
    event = await event_after(keys_seen, key["id"], timeout=2.0)
    assert event.limits.tokens_per_minute == 999 and time.monotonic() - answered < 2.0

    status, _ = await client.call("PATCH", f"/v1/manage/keys/{key['id']}", {"status": "disabled"})
    assert status == 200
    disabled = await event_after(keys_seen, key["id"], event.version, timeout=2.0)
    assert disabled.status == "disabled"

    conn = await asyncpg.connect(billing_dsn)
    try:
        before = await conn.fetchrow("SELECT state_version, last_used_at FROM api_keys WHERE id = $1", key["id"])
        assert before["last_used_at"] is None
        used_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
        producer = EventProducer(client_settings(platform), client_id="last-used-test")
        await producer.start()
        try:
            for decision, at in [("admitted", used_at - timedelta(minutes=1)), ("admitted", used_at),
                                 ("rejected", used_at + timedelta(minutes=1))]:
                await producer.publish("requests.v1", account["id"], RequestEventV1(
                    request_id=f"req_{uuid.uuid4().hex[:12]}", account_id=account["id"], key_id=key["id"],
                    api="openai.chat_completions", model="smollm2-135m-instruct", decision=decision,
                    received_at=at, edge_id="edge-test",
                ))
        finally:
            await producer.stop()

        async def recorded() -> bool:
            return await conn.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", key["id"]) == used_at

        await eventually(recorded, timeout=20, what="last_used_at follows the latest admitted request")
        after = await conn.fetchval("SELECT state_version FROM api_keys WHERE id = $1", key["id"])
        assert after == before["state_version"]  # not a state change: nothing republished
    finally:
        await conn.close()
    status, got = await client.call("GET", f"/v1/manage/keys/{key['id']}")
    assert status == 200 and datetime.fromisoformat(got["last_used_at"]) == used_at

    log = billing.proc.log_path.read_text()
    assert not leaks(key["key"], log) and "key_created" in log


async def test_grpc_answers_errors_in_the_openai_shape_and_refuses_a_call_without_caller(client: Client) -> None:
    status, answer = await client.call("POST", "/v1/manage/plans", {"name": "p", "budget_amount": 5.5})
    assert status == 400 and answer["error"]["type"] == "invalid_request_error"
    assert "decimal string" in answer["error"]["message"] and answer["error"]["param"] == "budget_amount"
    status, answer = await client.call("GET", "/v1/manage/accounts", caller=None)
    assert status == 401 and answer["error"]["type"] == "authentication_error"
    scoped = manage_pb2.Caller(account_id="acct_does_not_exist", key_id="key_x")
    status, answer = await client.call("GET", "/v1/manage/accounts", caller=scoped)
    assert status == 200 and answer["data"] == []
    status, answer = await client.call("POST", "/v1/manage/plans", {"name": "p"}, caller=scoped)
    assert status == 403 and answer["error"]["type"] == "permission_error"


async def test_openapi_document_is_public_and_nothing_else_is(client: Client) -> None:
    status, doc = await client.call("GET", "/openapi.json", caller=None)  # the edge forwards it without one
    assert status == 200 and doc["openapi"].startswith("3.1")
    assert {"post", "get"} <= set(doc["paths"]["/v1/manage/keys"])
    assert doc["paths"]["/openapi.json"]["get"]["security"] == []
    for method, path in [("GET", "/v1/manage/plans"), ("POST", "/v1/manage/accounts"), ("GET", "/v1/manage/keys/x")]:
        status, answer = await client.call(method, path, {"name": "x"} if method == "POST" else None, caller=None)
        assert status == 401, (method, path, answer)


def test_ops_endpoints_and_sigterm(platform: Platform, billing: ServiceProcess) -> None:
    with urllib.request.urlopen(f"{billing.base_url}/readyz", timeout=5) as reply:
        body = orjson.loads(reply.read())
    assert body["checks"] == {"postgres": True, "kafka": True}
    with urllib.request.urlopen(f"{billing.base_url}/metrics", timeout=5) as reply:
        assert b"tollgate_billing_key_events_published_total" in reply.read()
    started = time.monotonic()
    billing.stop()
    assert billing.proc.returncode == 0, billing.proc.log_tail()
    assert time.monotonic() - started < 15
    log = billing.proc.log_path.read_text()
    assert '"event": "service_stopped"' in log and "Traceback" not in log
    billing.start()  # leave it as the module fixture expects (it stops it at the end)
    billing.wait_ready()
