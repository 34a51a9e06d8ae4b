"""The reservation's input bound: a prompt's UTF-8 bytes plus the template's allowance, and a fixed
allowance per image, whatever the size of the image's URL."""

from __future__ import annotations

import base64

from services.edge.admission.reservation import (
    TEMPLATE_TOKENS_PER_MESSAGE,
    TEMPLATE_TOKENS_PER_REQUEST,
    TOKENS_PER_IMAGE,
    input_token_bound,
)
from tollgate.router.v1 import router_pb2


def _chat(*messages: router_pb2.ChatMessage) -> router_pb2.GenerateRequest:
    return router_pb2.GenerateRequest(chat=router_pb2.ChatInput(messages=messages))


def test_a_prompt_is_bounded_by_its_bytes_and_the_templates_allowance() -> None:
    request = _chat(router_pb2.ChatMessage(role="user", content="héllo"))  # 6 bytes
    assert input_token_bound(request) == TEMPLATE_TOKENS_PER_REQUEST + TEMPLATE_TOKENS_PER_MESSAGE + 6


def test_an_image_reserves_its_allowance_not_the_bytes_of_its_url() -> None:
    """A 300 KB inline image must not reserve 400,000 tokens (it would fail every TPM limit); what a
    provider charges for an image is bounded by its size in tiles or pixels, not by its encoding."""
    inline = "data:image/png;base64," + base64.b64encode(bytes(300_000)).decode()
    text_only = _chat(router_pb2.ChatMessage(role="user", content="what is it?"))
    with_images = _chat(router_pb2.ChatMessage(role="user", content="what is it?", images=[
        router_pb2.ImagePart(offset=11, url=inline), router_pb2.ImagePart(offset=11, url="https://example.com/a.png"),
    ]))
    assert input_token_bound(with_images) == input_token_bound(text_only) + 2 * TOKENS_PER_IMAGE
