"""Metering's half of the management API: ``GET /v1/manage/usage`` (and ``GET /openapi.json``), served
over ``tollgate.manage.v1.ManagementService`` — the edge authenticates the caller and forwards.

Built on the shared kit (``services.common.manage``: routing, validation, dispatch, OpenAPI, the gRPC
servicer). What is metering's: ``routes`` (the table), ``wire`` (the query), ``usage`` (the handler and
its tenancy rule), ``queries`` (SQL over the rollup projections), ``views`` (the answer), ``context``
(its ``Deps``), ``openapi`` (what its document says of itself) and ``dispatch`` (its metric and 503).
"""
