"""A statement as CSV: the same numbers as its JSON, one flat table a spreadsheet opens as is.

Columns: ``account_id, period, section, model, key_id, kind, requests, input_tokens,
cached_input_tokens, cache_write_tokens, output_tokens, count, amount``. Sections, in order:
``usage`` (one row per model and key), ``usage_total``, ``usage_late``, ``opening_balance``,
``ledger`` (one row per kind), ``closing_balance``. ``amount`` is US dollars as the JSON writes it
(usage: cost; ledger: the signed effect on the balance); cells that do not apply are empty. A model
or key name that a spreadsheet would read as a formula is written with a leading ``'``.
"""

from __future__ import annotations

import csv
import io

from services.billing.statements.views import StatementView, UsageTotals

COLUMNS = ("account_id", "period", "section", "model", "key_id", "kind", "requests", "input_tokens",
           "cached_input_tokens", "cache_write_tokens", "output_tokens", "count", "amount")


def _text(value: str) -> str:
    """A name a spreadsheet must not read as a formula (``=``, ``+``, ``-``, ``@`` first)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def _usage(section: str, usage: UsageTotals, model: str = "", key_id: str = "") -> dict[str, object]:
    return {"section": section, "model": _text(model), "key_id": _text(key_id), "requests": usage.requests,
            "input_tokens": usage.input_tokens, "cached_input_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens, "output_tokens": usage.output_tokens,
            "amount": usage.cost}


def to_csv(view: StatementView) -> bytes:
    rows = [_usage("usage", line, line.model, line.key_id) for line in view.usage.lines]
    rows.append(_usage("usage_total", view.usage.total))
    rows.append(_usage("usage_late", view.usage.late))
    rows.append({"section": "opening_balance", "amount": view.ledger.opening_balance})
    rows += [{"section": "ledger", "kind": line.kind, "count": line.count, "amount": line.amount}
             for line in view.ledger.lines]
    rows.append({"section": "closing_balance", "amount": view.ledger.closing_balance})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, restval="", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({"account_id": view.account_id, "period": view.period, **row})
    return out.getvalue().encode()
