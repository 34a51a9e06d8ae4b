"""Catalog's part of the management API: models, prices, deployments, aliases, sync and review, behind
``ManagementService.Call``.

The edge authenticates the caller and forwards ``/v1/manage/models...`` and ``/v1/manage/catalog...``
here. ``routes`` is the one route table (``openapi`` renders it); ``validation`` and ``wire`` turn the
request into typed models or one clear 400; handlers (``models``, ``prices``, ``deployments``,
``aliases``, ``review``) run each change in one transaction through ``services.catalog.store`` (row,
version, audit record together), then flush the catalog.v1 outbox before answering; ``dispatch``
turns any failure into the OpenAI error shape.
"""
