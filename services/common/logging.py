"""structlog JSON logging with a redaction processor that runs last before rendering.

Promise 4: prompts and completions are never logged, and neither are API keys. We do not trust every
call site to remember that: the processor drops any field whose name can carry model text (at any
depth) and masks anything shaped like a Tollgate secret, whatever the field is called.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

# Field names that can carry prompt or completion text, in our code and in the wire formats we proxy.
CONTENT_FIELDS = frozenset({
    "prompt", "prompts", "messages", "message_content", "content", "completion", "completions",
    "choices", "text", "text_input", "text_output", "input", "inputs", "output", "outputs",
    "system", "instructions", "delta", "body", "request_body", "response_body", "tool_calls",
    "arguments", "stop_words", "suffix",
})
SECRET_FIELDS = frozenset({"api_key", "key", "secret", "authorization", "x-api-key", "password", "token"})
REDACTED = "[redacted]"
_SECRET_RE = re.compile(r"\b(tg|sk)-[A-Za-z0-9_\-]{8,}")


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_RE.sub(lambda m: m.group(1) + "-" + REDACTED, value)
    if isinstance(value, Mapping):
        return _scrub_mapping(value)
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _scrub_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in data.items():
        lowered = str(name).lower()
        if lowered in CONTENT_FIELDS:
            continue
        out[name] = REDACTED if lowered in SECRET_FIELDS else _scrub(value)
    return out


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: drop content fields, mask secrets. The ``event`` message is kept."""
    message = event_dict.get("event")
    scrubbed = _scrub_mapping({k: v for k, v in event_dict.items() if k != "event"})
    if message is not None:
        scrubbed["event"] = _scrub(message)
    return scrubbed


def configure_logging(service: str, level: str = "info") -> None:
    """JSON lines on stderr, one per event, tagged with the service name."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s", force=True)
    for noisy in ("aiokafka", "kafka", "uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
