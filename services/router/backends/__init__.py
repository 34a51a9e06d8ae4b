"""Backends the router can send a generation to. Each yields text deltas and ends with usage."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass
class Outcome:
    """What a finished generation reports: backend-counted tokens and why it stopped."""

    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str = "stop"
    extra: dict[str, int] = field(default_factory=dict)
