"""The edge's one route table. Handlers are thin; every route of the public API is listed here."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from services.common.ops import ops_routes
from services.edge.cors import cors_middleware
from services.edge.dependencies import EdgeDeps
from services.edge.request_id import RequestIdMiddleware
from services.edge.routes import anthropic, embeddings, manage, models, openai, webhooks
from services.edge.routes.fallbacks import EXCEPTION_HANDLERS


def build_app(deps: EdgeDeps) -> Starlette:
    routes = [
        Route("/v1/chat/completions", openai.chat_completions, methods=["POST"]),
        Route("/v1/completions", openai.completions, methods=["POST"]),
        Route("/v1/responses", openai.responses, methods=["POST"]),
        Route("/v1/embeddings", embeddings.embeddings, methods=["POST"]),
        Route("/v1/models", models.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", models.get_model, methods=["GET"]),
        Route("/v1/messages", anthropic.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", anthropic.count_tokens, methods=["POST"]),
        Route("/v1/manage/{path:path}", manage.forward, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
        Route("/openapi.json", manage.openapi, methods=["GET"]),
        Route("/v1/webhooks/stripe", webhooks.stripe_webhook, methods=["POST"]),
        *ops_routes("edge", deps.readiness()),
    ]
    middleware = [Middleware(RequestIdMiddleware), *cors_middleware(deps.settings.cors_origins)]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS)
    app.state.deps = deps
    return app
