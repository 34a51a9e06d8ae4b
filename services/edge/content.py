"""A turn's content parts as the router takes them: one text, with images and cache breakpoints placed
in it by offset (code points, as the router slices them).

Adjacent text parts are joined with a newline, as before images were served. An image sits between
the parts around it with no newline added on either side, so that cutting the text at the images'
offsets gives the client's parts back exactly, and a provider sees the parts the client sent.

Images travel as URLs: an http(s) URL is passed on for the provider to fetch, an image sent inline
travels as a ``data:`` URL (Anthropic's base64 source becomes one; the router turns it back). Both are
checked here, so a malformed image is the client's 400 before anything is forwarded or billed.
"""

from __future__ import annotations

import binascii
import re

from services.common.errors import InvalidRequest
from services.common.events.catalog import ModelEntry
from tollgate.router.v1 import router_pb2

_DATA_URL = re.compile(r"data:(image/(?:png|jpeg|gif|webp));base64,")
MAX_IMAGE_URL_CHARS = 8192  # a fetched image's URL; an inline image is bounded by the body size only


class FlatTurn:
    """Collects one turn's parts in order: ``add_text`` and ``add_image``; then ``text``, ``images``,
    ``marks``. A ``ttl`` of None adds no cache breakpoint; "" is the provider's default lifetime."""

    def __init__(self) -> None:
        self._texts: list[str] = []
        self._size = 0
        self._joins = False  # the last part was text: a text part after it is joined with "\n"
        self.images: list[router_pb2.ImagePart] = []
        self.marks: list[router_pb2.CacheBreakpoint] = []
        self.thinking: list[router_pb2.ThinkingBlock] = []

    def add_text(self, text: str, ttl: str | None = None) -> None:
        if self._joins:
            self._texts.append("\n")
            self._size += 1
        self._texts.append(text)
        self._size += len(text)
        self._joins = True
        if ttl is not None:
            self.marks.append(router_pb2.CacheBreakpoint(offset=self._size, ttl=ttl))

    def add_image(self, url: str, detail: str = "", ttl: str | None = None) -> None:
        self.images.append(router_pb2.ImagePart(
            offset=self._size, url=url, detail=detail, cached=ttl is not None, cache_ttl=ttl or "",
        ))
        self._joins = False

    def add_thinking(
        self, after_calls: int, thinking: str = "", signature: str = "", redacted: str = "",
    ) -> None:
        """A thinking block of an assistant turn, where it came: after the text so far, or (once the
        turn has called tools) after its ``after_calls``-th call. Like an image, it keeps the text on
        either side apart."""
        self.thinking.append(router_pb2.ThinkingBlock(
            thinking=thinking, signature=signature, redacted=redacted,
            offset=self._size, after_calls=after_calls,
        ))
        self._joins = False

    @property
    def text(self) -> str:
        return "".join(self._texts)


def image_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an image a provider takes, or None: an http(s) URL, or a data: URL of a
    PNG, JPEG, GIF or WebP image in base64 (the formats both APIs accept)."""
    if url.startswith(("https://", "http://")):
        if len(url) > MAX_IMAGE_URL_CHARS:
            return f"an image URL may be at most {MAX_IMAGE_URL_CHARS} characters long"
        return None
    if url.startswith("data:"):
        if (match := _DATA_URL.match(url)) is None:
            return ("an inline image must be a data URL of the form data:image/<png|jpeg|gif|webp>;base64,"
                    "<data>")
        return base64_problem(url[match.end():])
    return "an image must be an http(s) URL or a data: URL"


def base64_problem(data: str) -> str | None:
    """Why ``data`` is not an image's base64, or None."""
    if not data:
        return "the image data is empty"
    try:
        binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        return "the image data is not valid base64"
    return None


def data_url(media_type: str, data: str) -> str:
    """An inline image (Anthropic's base64 source) as the data: URL the router carries."""
    return f"data:{media_type};base64,{data}"


def has_images(request: router_pb2.GenerateRequest) -> bool:
    return request.WhichOneof("input") == "chat" and any(m.images for m in request.chat.messages)


def check_image_input(request: router_pb2.GenerateRequest, model: ModelEntry) -> None:
    """Images only for a model whose catalog entry lists image input (``input_modalities``): refused
    here, in the API's words, rather than by a provider after the request was admitted."""
    if "image" not in model.input_modalities and has_images(request):
        raise InvalidRequest(
            f"The model `{model.id}` does not take image input: send text only, or use a model that "
            "takes images (GET /v1/models lists each model's input modalities).",
            param="messages", code="unsupported_value",
        )
