"""What a request reserves at admission: an upper bound of its tokens and their cost.

The edge has no tokenizer for every model, so the input side is a bound, not an estimate: every BPE
tokenizer in use is byte-level (a token covers at least one UTF-8 byte), so a prompt of N bytes is at
most N tokens; a fixed allowance per message covers the chat template's special tokens, and one per
image covers what the providers charge for an image (its URL's bytes say nothing of that). The output
side is the request's max tokens (the client's, or the model's own limit). Reserving the worst case
is what makes budgets hold under concurrency: the real, smaller figures are settled at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.common.events.catalog import PriceEntry
from services.common.pricing import TokenCounts, cost_micros
from tollgate.router.v1 import router_pb2

TEMPLATE_TOKENS_PER_MESSAGE = 8  # role markers and separators of a chat template, generously
TEMPLATE_TOKENS_PER_REQUEST = 16  # begin/end of sequence, the generation prompt
# The most an image costs at the providers served: OpenAI's tile models at most 1,445 (85 + 8 tiles
# of 170), its patch models at most 1,536 patches times a model factor (gpt-4.1-nano's 2.46: 3,779),
# Anthropic about 1,600 (1.15 megapixels at 750 pixels per token).
TOKENS_PER_IMAGE = 4096


@dataclass(frozen=True)
class Reservation:
    input_tokens: int
    output_tokens: int
    cost_micros: int

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def input_token_bound(request: router_pb2.GenerateRequest) -> int:
    size = TEMPLATE_TOKENS_PER_REQUEST + len(request.provider_options_json.encode())
    if request.WhichOneof("input") == "chat":
        for message in request.chat.messages:
            size += TEMPLATE_TOKENS_PER_MESSAGE + len(message.content.encode()) + len(message.name.encode())
            size += TOKENS_PER_IMAGE * len(message.images)
    elif request.WhichOneof("input") == "prompt_tokens":
        size += len(request.prompt_tokens.ids)  # token ids are their own count
    else:
        size += len(request.prompt.encode())
    return size


def embed_input_bound(request: router_pb2.EmbedRequest) -> int:
    """A text of N bytes is at most N tokens, token ids are their own count; each input may get a
    model's begin and end markers."""
    size = 0
    for item in request.inputs:
        size += TEMPLATE_TOKENS_PER_MESSAGE
        size += len(item.text.encode()) if item.WhichOneof("input") == "text" else len(item.tokens.ids)
    return size


def worst_case_cost(price: PriceEntry | None, input_tokens: int, output_tokens: int) -> int:
    """Every input token at the dearest input-side price (a cache write can cost more than plain
    input), every output token generated: never less than what the request can really cost."""
    if price is None:
        return 0
    dearest = max(
        (price.input_micros_per_mtok, "input"), (price.cached_input_micros_per_mtok, "cached_input"),
        (price.cache_write_micros_per_mtok, "cache_write"),
    )[1]
    return cost_micros(price, TokenCounts(**{dearest: input_tokens}, output=output_tokens))


def reserve_for(request: router_pb2.GenerateRequest, price: PriceEntry | None) -> Reservation:
    """The worst case of ``request``: its input bound, every allowed output token generated."""
    input_tokens = input_token_bound(request)
    output_tokens = max(request.sampling.max_tokens, 0)
    return Reservation(input_tokens, output_tokens, worst_case_cost(price, input_tokens, output_tokens))


def reserve_for_choices(
    requests: Sequence[router_pb2.GenerateRequest], price: PriceEntry | None
) -> Reservation:
    """The worst case of an answer of several choices (``n``, a completion's batch of prompts): each
    choice's, since each is its own generation, prompt and all (``choices.py``)."""
    if len(requests) == 1:
        return reserve_for(requests[0], price)
    parts = [reserve_for(request, price) for request in requests]
    return Reservation(sum(p.input_tokens for p in parts), sum(p.output_tokens for p in parts),
                       sum(p.cost_micros for p in parts))


def usage_tokens(usage: router_pb2.Usage) -> TokenCounts:
    return TokenCounts(
        input=usage.input_tokens, cached_input=usage.cached_input_tokens,
        cache_write=usage.cache_write_tokens, output=usage.output_tokens,
    )


def reserve_for_embedding(request: router_pb2.EmbedRequest, price: PriceEntry | None) -> Reservation:
    """The worst case of an embedding: its input bound, and no output."""
    input_tokens = embed_input_bound(request)
    return Reservation(input_tokens, 0, worst_case_cost(price, input_tokens, 0))
