"""Statements: what an account used and paid in one billing period.

- ``period``: a calendar month in UTC (``"2026-11"``, what closes) or a range of whole days.
- ``usage_client``: metering's usage API over gRPC (ClickHouse is metering's: billing never reads it).
- ``ledger_lines``: opening balance, a line per ledger kind, closing balance, from the credit ledger;
  which statement a late transaction is on.
- ``build``: a statement computed now (usage lines by model and key, their totals, late usage).
- ``store`` / ``close``: closed statements (migration 0005), the nightly close job and its grace.
- ``views`` / ``wire`` / ``export`` / ``handlers``: the API's answers, query, CSV and handlers.

Described for users in docs/billing.md#statements.
"""
