"""``GET /ops/usage`` on metering's ops port: the operator's view for the embedded default (no Grafana).

The same figures as the Grafana dashboard (infra/grafana/): requests, failed requests and error rate,
tokens by kind, cost and latency (p50/p99 of duration, p50 of time to first token) per model, key and
account over the last ``hours`` (default 24) — plain HTML, no script. It is an ops endpoint like
/metrics: served on the internal ops port, for the operator, and it shows every account.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from services.common.money import format_micros
from services.common.numbers import whole_number
from services.metering.store import UsageStore

MAX_HOURS: Final = 24 * 31
TOP: Final = 50
DIMENSIONS: Final = (("model", "model_served"), ("key", "key_id"), ("account", "account_id"))
FIGURES: Final = (
    "count() AS requests",
    "countIf(status = 'error') AS failed_requests",
    "sum(input_tokens) AS input_tokens",
    "sum(cached_input_tokens) AS cached_input_tokens",
    "sum(cache_write_tokens) AS cache_write_tokens",
    "sum(output_tokens) AS output_tokens",
    "sum(cost_micros) AS cost_micros",
    "quantile(0.5)(duration_ms) AS p50_ms",
    "quantile(0.99)(duration_ms) AS p99_ms",
    "quantile(0.5)(ttft_ms) AS ttft_p50_ms",
)
HEADINGS: Final = ("requests", "failed", "error rate", "input", "cached", "cache write", "output",
                   "cost (USD)", "p50 ms", "p99 ms", "TTFT p50 ms")


@dataclass(frozen=True)
class Section:
    title: str
    rows: list[dict[str, Any]]


def figures_sql(column: str | None, hours: int) -> str:
    """Figures over the last ``hours``, per value of ``column`` (or in total), largest cost first."""
    name = f"{column} AS name, " if column else ""
    sql = (f"SELECT {name}{', '.join(FIGURES)} FROM usage_raw "  # noqa: S608 - constants and an int
           f"WHERE started_at >= now64(3, 'UTC') - INTERVAL {int(hours)} HOUR")
    if column:
        sql += f" GROUP BY name ORDER BY cost_micros DESC, requests DESC, name LIMIT {TOP}"
    return sql


async def sections(store: UsageStore, hours: int) -> list[Section]:
    out = [Section("total", [r for r in await store.query(figures_sql(None, hours)) if int(r["requests"])])]
    for title, column in DIMENSIONS:
        out.append(Section(f"per {title}", await store.query(figures_sql(column, hours))))
    return out


def _number(value: Any) -> str:
    return "-" if value is None else f"{float(value):,.0f}"


def _cells(row: dict[str, Any]) -> list[str]:
    requests, failed = int(row["requests"]), int(row["failed_requests"])
    return [
        f"{requests:,}", f"{failed:,}", f"{100 * failed / requests:.2f}%" if requests else "-",
        *(f"{int(row[k]):,}" for k in ("input_tokens", "cached_input_tokens", "cache_write_tokens",
                                       "output_tokens")),
        format_micros(int(row["cost_micros"])),
        _number(row["p50_ms"]), _number(row["p99_ms"]), _number(row["ttft_p50_ms"]),
    ]


def render(parts: list[Section], hours: int) -> str:
    body = [f"<h1>Tollgate usage, last {hours} h</h1>",
            "<p>Per model (served), key and account; failed = status error; cost priced at ingestion. "
            "Latency: duration and time to first token of each request.</p>"]
    for part in parts:
        body.append(f"<h2>{html.escape(part.title)}</h2>")
        if not part.rows:
            body.append("<p>No usage in this period.</p>")
            continue
        named = "name" in part.rows[0]
        head = ("<th>name</th>" if named else "") + "".join(f"<th>{h}</th>" for h in HEADINGS)
        lines = [f"<table><tr>{head}</tr>"]
        for row in part.rows:
            name = f"<td>{html.escape(str(row['name']))}</td>" if named else ""
            lines.append(f"<tr>{name}" + "".join(f"<td>{c}</td>" for c in _cells(row)) + "</tr>")
        body.append("".join(lines) + "</table>")
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child{text-align:left}")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>Tollgate usage</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")


def ops_usage_route(store: UsageStore) -> Route:
    async def page(request: Request) -> Response:
        hours = whole_number(request.query_params.get("hours", "24"))
        if hours is None or not 1 <= hours <= MAX_HOURS:
            return HTMLResponse(f"<p>hours must be a whole number from 1 to {MAX_HOURS}</p>", status_code=400)
        return HTMLResponse(render(await sections(store, hours), hours))

    return Route("/ops/usage", page, methods=["GET"])
