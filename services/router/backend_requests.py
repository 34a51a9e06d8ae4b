"""The router's gRPC requests as its backends take them: ``GenerateRequest`` → ``GenerationRequest``,
``EmbedRequest`` → ``EmbeddingRequest``. What the edge should never send (no max tokens, no inputs,
options that are not an object) is refused here as the client's error, before any deployment is asked.
"""

from __future__ import annotations

import json

from services.common.errors import InvalidRequest
from services.router.backends import (
    CacheBreakpoint,
    ChatTurn,
    EmbeddingRequest,
    GenerationRequest,
    Image,
    Sampling,
    ThinkingBlock,
    ThinkingConfig,
)
from tollgate.router.v1 import router_pb2


def _sampling(params: router_pb2.SamplingParams) -> Sampling:
    if params.max_tokens <= 0:
        raise InvalidRequest("max_tokens must be a positive integer", param="max_tokens")
    return Sampling(
        max_tokens=params.max_tokens,
        temperature=params.temperature if params.HasField("temperature") else None,
        top_p=params.top_p if params.HasField("top_p") else None,
        top_k=params.top_k if params.HasField("top_k") else None,
        seed=params.seed if params.HasField("seed") else None,
        stop=tuple(params.stop),
    )


def generation_request(request: router_pb2.GenerateRequest, chat_template: str | None) -> GenerationRequest:
    options: object = json.loads(request.provider_options_json) if request.provider_options_json else {}
    if not isinstance(options, dict):
        raise InvalidRequest("provider_options_json must be a JSON object")
    given = request.WhichOneof("input")
    chat = given == "chat"
    return GenerationRequest(
        request_id=request.request_id,
        upstream_model=request.model,
        sampling=_sampling(request.sampling),
        messages=tuple(
            ChatTurn(m.role, m.content, m.name, m.tool_call_id,
                     tuple(CacheBreakpoint(b.offset, b.ttl) for b in m.cache_breakpoints), m.tool_failed,
                     tuple(_image(i) for i in m.images), tuple(_thinking_block(b) for b in m.thinking))
            for m in request.chat.messages
        ) if chat else None,
        prompt=request.prompt if given in ("prompt", None) else None,
        prompt_tokens=tuple(request.prompt_tokens.ids) if given == "prompt_tokens" else None,
        provider_options=options,
        chat_template=chat_template,
        end_user=request.end_user or None,
        prompt_cache_key=request.prompt_cache_key or None,
        thinking=_thinking_config(request.thinking) if request.HasField("thinking") else None,
        accepts_reasoning=request.accepts_reasoning,
    )


def embedding_request(request: router_pb2.EmbedRequest) -> EmbeddingRequest:
    if not request.inputs:
        raise InvalidRequest("input must not be empty", param="input")
    if request.dimensions < 0:
        raise InvalidRequest("dimensions must be a positive integer", param="dimensions")
    return EmbeddingRequest(
        request_id=request.request_id,
        upstream_model=request.model,
        inputs=tuple(
            i.text if i.WhichOneof("input") == "text" else tuple(i.tokens.ids) for i in request.inputs
        ),
        dimensions=request.dimensions or None,
        end_user=request.end_user or None,
    )


def _thinking_config(config: router_pb2.ThinkingConfig) -> ThinkingConfig:
    return ThinkingConfig(config.type, config.budget_tokens, config.display)


def _thinking_block(block: router_pb2.ThinkingBlock) -> ThinkingBlock:
    return ThinkingBlock(block.thinking, block.signature, block.redacted, block.offset, block.after_calls)


def _image(part: router_pb2.ImagePart) -> Image:
    cache = CacheBreakpoint(part.offset, part.cache_ttl) if part.cached else None
    return Image(part.offset, part.url, part.detail, cache)
