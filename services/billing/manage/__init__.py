"""Billing's management API backend: accounts, plans and keys behind ``ManagementService.Call``.

The edge authenticates the caller and forwards the HTTP request; the shared kit
(``services.common.manage``) routes, validates and renders it. This package holds what is billing's
own: the request and answer models (``wire``, ``views``), the tenancy rules (``tenancy``), the changes,
each run in one transaction (``store``, resource modules), which hand the affected keys to the keys.v1
outbox. ``routes`` is the one route table; ``openapi`` says what billing's document is about.
"""
