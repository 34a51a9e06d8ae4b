"""Billing's management API backend: accounts, plans and keys behind ``ManagementService.Call``.

The edge authenticates the caller and forwards the HTTP request; this package validates it
(``wire``), applies the tenancy rules (``tenancy``), runs the change in one transaction (``store``,
resource modules), hands the affected keys to the keys.v1 outbox, and answers status + JSON.
``routes`` is the one route table; ``openapi`` renders it.
"""
