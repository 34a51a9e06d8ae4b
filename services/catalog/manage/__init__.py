"""Catalog's part of the management API: models, prices, deployments, aliases, sync and review, behind
``ManagementService.Call``.

The edge authenticates the caller and forwards ``/v1/manage/models...`` and ``/v1/manage/catalog...``
here; the shared kit (``services.common.manage``) routes, validates and renders the request and turns
any failure into the OpenAI error shape. ``routes`` is the one route table (``openapi`` says what the
catalog's part of the document is about); ``wire`` holds the request models; handlers (``models``,
``prices``, ``deployments``, ``aliases``, ``review``) run each change in one transaction through
``services.catalog.store`` (row, version, audit record together), then flush the catalog.v1 outbox
before answering.
"""
