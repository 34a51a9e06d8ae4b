"""Billing's client of metering's usage API: ``GET /v1/manage/usage`` over metering's
``tollgate.manage.v1.ManagementService.Call``, exactly as the edge forwards it.

ClickHouse has one owner (metering), so statements read usage only through this API, never from the
tables. Billing calls as the admin caller — it has already applied its own tenancy rule (an account's
tree) before asking — and always names the account. The answer's decimal strings become integer
micro-USD here, at the boundary; anything but a 200 becomes a 503 (a statement is never built from a
partial or failed usage answer: fail closed on money).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import grpc
import orjson
import structlog

from services.common.errors import DependencyUnavailable
from services.common.money import parse_micros
from tollgate.manage.v1 import manage_pb2, manage_pb2_grpc

log = structlog.get_logger(__name__)
USAGE_PATH = "/v1/manage/usage"
UNAVAILABLE = "Usage cannot be read from metering right now; retry shortly."


@dataclass(frozen=True)
class Usage:
    """Sums over some requests: what a statement's usage line holds (money in micro-USD)."""

    requests: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    cost_micros: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Usage)))

    def __sub__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(Usage)))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(Usage)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        return cls(**{f.name: int(data.get(f.name, 0)) for f in fields(Usage)})

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Usage:
        """A row of metering's answer (cost as a decimal string)."""
        return cls(int(row["requests"]), int(row["input_tokens"]), int(row["cached_input_tokens"]),
                   int(row["cache_write_tokens"]), int(row["output_tokens"]),
                   parse_micros(row["cost"], "cost"))


@dataclass(frozen=True)
class UsageAnswer:
    lines: dict[tuple[str, str], Usage]  # (model, key id) → usage
    total: Usage  # metering's own totals for the period


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MeteringUsage:
    """``usage(account, start, end)``: the account's usage in [start, end) by (model, key)."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = 15.0) -> None:
        self._stub = manage_pb2_grpc.ManagementServiceStub(channel)
        self._timeout = timeout

    async def usage(self, account_id: str, start: datetime, end: datetime,
                    request_id: str = "") -> UsageAnswer:
        query = urlencode({"account_id": account_id, "from": _time(start), "to": _time(end),
                           "group_by": "none", "breakdown": "model,key"})
        try:
            reply = await self._stub.Call(
                manage_pb2.ManageRequest(request_id=request_id, caller=manage_pb2.Caller(admin=True),
                                         method="GET", path=USAGE_PATH, query=query),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as err:
            log.warning("metering_usage_unavailable", code=err.code().name, account_id=account_id)
            raise DependencyUnavailable(UNAVAILABLE, retry_after=5.0) from None
        if reply.status != 200:
            # our own query is well-formed, so any refusal is metering's trouble, not the client's
            log.warning("metering_usage_refused", status=reply.status, account_id=account_id)
            raise DependencyUnavailable(UNAVAILABLE, retry_after=5.0)
        body = orjson.loads(reply.body)
        lines: dict[tuple[str, str], Usage] = {}
        for bucket in body["data"]:
            for row in bucket["results"]:
                key = (str(row["model"]), str(row["key_id"]))
                lines[key] = lines.get(key, Usage()) + Usage.from_row(row)
        return UsageAnswer(lines, Usage.from_row(body["totals"]))
