"""The management-API kit: what every service behind ``tollgate.manage.v1.ManagementService`` shares.

The edge authenticates the caller and forwards the HTTP request over gRPC; each service (billing,
catalog, metering) answers it from its own route table. Everything here is the same for all
of them, so it is written once and a fix reaches every service:

- ``context``: ``Caller`` (who the edge says is calling), ``Call`` (what a handler is given besides the
  service's own ``Deps``) and ``Reply`` (what it returns).
- ``routing``: ``Route[Deps]`` (one row of a route table: method, path template, handler, the models
  that validate the request and describe the answer) and ``match`` (``{id}`` and ``{id*}`` templates,
  404 / 405 as the API's error shape).
- ``validation``: a raw JSON body or query string → a request model, or one clear 400.
- ``dispatch``: ``Dispatcher`` — route, validate, run, render, or turn any failure into the OpenAI
  error shape; timed in the service's own histogram.
- ``openapi``: ``document(routes, ApiInfo)`` — the OpenAPI 3.1 document generated from the route table.
- ``grpc_server``: the ``ManagementService`` servicer around a service's dispatcher.
- ``views``: ``ErrorView``, the documented error answer.

What stays in a service: its ``Deps`` (pool, outbox, settings), its route table and handlers, its
request/response models, its tenancy rules, its metric objects (names are per service) and its
``ApiInfo`` (title, description, what each error status means there).

To adopt it: define ``Deps``; write ``ROUTES: tuple[Route[Deps], ...]`` with handlers
``async (deps, call) -> Reply``; build ``dispatch = Dispatcher(ROUTES, <your Histogram>, "<the
unavailable message>")``; serve ``ManagementService(deps, dispatch)`` with ``build_server``; render
``document(ROUTES, <your ApiInfo>)`` from an ``OPENAPI_PATH`` route. A GET-only API simply leaves
``body=None`` (the forwarded body is then ignored); ``Route.description`` adds a longer text to an
operation; answers are rendered by alias (``"from"``/``"to"``). A ``value_error`` message is used as
the whole sentence (write validators' messages so, naming the parameter themselves).
``tests/common/test_manage_kit.py`` is a whole toy service. A service whose changes go out through a
transactional outbox gets its publisher loop from ``services.common.outbox`` (billing and catalog do).
"""
