"""A conversation in Anthropic's Messages shape: the router's turns become ``system`` and ``messages``.

What the conversion keeps (see ``anthropic``'s module notes for why): system turns anywhere become
the top-level ``system``; consecutive turns of one role merge; an assistant turn's tool calls become
``tool_use`` blocks and a ``tool`` turn a user turn's ``tool_result``; the client's cache breakpoints go
back on the blocks it marked; images and an earlier answer's thinking blocks go where the client and
the model put them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.common.errors import InvalidRequest
from services.router.backends import CacheBreakpoint, ChatTurn, Image, ThinkingBlock, text_and_images
from services.router.backends.tool_use import call_input


def to_messages(
    turns: Sequence[ChatTurn], tool_calls: Mapping[int, list[dict[str, Any]]] | None = None,
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """(system, messages) in Anthropic's shape; ``tool_calls`` are earlier assistant turns' calls by
    turn index. See the module notes for why."""
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for index, turn in enumerate(turns):
        if turn.role == "system":
            system.extend(_cached(turn, [{"type": "text", "text": turn.content}]))
            continue
        role, blocks = _blocks(turn, (tool_calls or {}).get(index, []))
        blocks = _with_images(turn) if turn.images and turn.role == "user" else _cached(turn, blocks)
        if signed := [block for block in turn.thinking if block.signed]:  # unsigned: another model's
            blocks = _with_thinking(signed, blocks)
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    if not messages:
        raise InvalidRequest("at least one user or assistant message is required", param="messages")
    for message in messages:
        blocks = message["content"]
        if len(blocks) == 1 and blocks[0]["type"] == "text" and "cache_control" not in blocks[0]:
            message["content"] = blocks[0]["text"]  # the plain-string form, as clients usually send it
    if any("cache_control" in block for block in system):
        return system, messages  # blocks, so that the breakpoints stay where the client put them
    return ("\n\n".join(block["text"] for block in system) if system else None), messages


def _cached(turn: ChatTurn, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The turn's blocks with its cache breakpoints put back: the leading text block split where a
    block of the client's ended and was marked, and a breakpoint at the end on the turn's last block."""
    if not turn.cache_breakpoints or not blocks:
        return blocks
    text = turn.content
    splits_text = blocks[0]["type"] == "text"

    def within(mark: CacheBreakpoint) -> bool:
        return splits_text and 0 < mark.offset < len(text)

    inside = sorted(filter(within, turn.cache_breakpoints), key=lambda mark: mark.offset)
    at_end = [mark for mark in turn.cache_breakpoints if not within(mark)]
    out = blocks
    if inside:
        out, start = [], 0
        for mark in inside:
            if mark.offset > start:
                out.append({"type": "text", "text": text[start:mark.offset], "cache_control": _control(mark)})
                start = mark.offset
        if text[start:]:
            out.append({"type": "text", "text": text[start:]})
        out += blocks[1:]
    if at_end:
        out = [*out[:-1], {**out[-1], "cache_control": _control(at_end[-1])}]
    return out


def _with_images(turn: ChatTurn) -> list[dict[str, Any]]:
    """A user turn with images as text and image blocks in the client's order. A breakpoint marks the
    text block that ends where it is (one at an image's offset marks the text before the image), an
    image's own breakpoint marks the image."""
    marks = {mark.offset: mark for mark in turn.cache_breakpoints}
    blocks: list[dict[str, Any]] = []
    position = 0
    for part in text_and_images(turn):
        if isinstance(part, Image):
            image: dict[str, Any] = {"type": "image", "source": _image_source(part.url)}
            blocks.append({**image, "cache_control": _control(part.cache)} if part.cache else image)
            continue
        start, end = position, position + len(part)
        for cut in [*sorted(o for o in marks if start < o < end), end]:
            text: dict[str, Any] = {"type": "text", "text": turn.content[start:cut]}
            blocks.append({**text, "cache_control": _control(marks[cut])} if cut in marks else text)
            start = cut
        position = end
    return blocks


def _with_thinking(thinking: Sequence[ThinkingBlock], blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An assistant turn's blocks with its thinking put back where the model wrote it: a block at an
    offset inside the text splits it there (a breakpoint stays on the text block it ended), one after
    calls follows its ``after_calls``-th call, anything left goes at the end. Empty text is dropped, as
    a turn of thinking and calls has none."""
    pending = list(thinking)
    out: list[dict[str, Any]] = []
    position = calls = 0
    for block in blocks:
        if block["type"] == "text":
            text, start = block["text"], 0
            while pending and pending[0].after_calls == 0 and pending[0].offset < position + len(text):
                cut = max(pending[0].offset - position, start)
                if cut > start:
                    out.append({"type": "text", "text": text[start:cut]})
                    start = cut
                out.append(_thinking_block(pending.pop(0)))
            if text[start:]:
                out.append({**block, "text": text[start:]})
            position += len(text)
            continue
        if block["type"] == "tool_use":
            while pending and pending[0].after_calls <= calls:
                out.append(_thinking_block(pending.pop(0)))
            calls += 1
        out.append(block)
    return out + [_thinking_block(b) for b in pending]


def _thinking_block(block: ThinkingBlock) -> dict[str, str]:
    if block.redacted:
        return {"type": "redacted_thinking", "data": block.redacted}
    return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}


def _image_source(url: str) -> dict[str, str]:
    """Anthropic's source for an image the edge carries as a URL: a data: URL is the image itself."""
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        media_type = head.removeprefix("data:").removesuffix(";base64")
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _control(mark: CacheBreakpoint) -> dict[str, str]:
    return {"type": "ephemeral", **({"ttl": mark.ttl} if mark.ttl else {})}


def _blocks(turn: ChatTurn, calls: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """One turn's role and content blocks. A tool result is a user turn's ``tool_result`` block; an
    assistant turn that called tools carries them as ``tool_use`` blocks after its text (and has no
    empty text block, which Anthropic refuses)."""
    if turn.role == "tool":
        content: str | list[dict[str, Any]] = turn.content
        if turn.images:  # a tool that returned images (a screenshot): the result's content as blocks
            content = [
                {"type": "text", "text": part} if isinstance(part, str)
                else {"type": "image", "source": _image_source(part.url)}
                for part in text_and_images(turn)
            ]
        result = {"type": "tool_result", "tool_use_id": turn.tool_call_id, "content": content}
        return "user", [{**result, "is_error": True} if turn.tool_failed else result]
    if turn.role not in ("user", "assistant"):
        raise InvalidRequest(f"unsupported message role {turn.role!r}", param="messages")
    text = [{"type": "text", "text": turn.content}]
    if turn.role == "user" or not calls:
        return turn.role, text
    uses = [{"type": "tool_use", "id": c["id"], "name": c["function"]["name"], "input": call_input(c)}
            for c in calls]
    return "assistant", (text if turn.content else []) + uses
