from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from services.common.logging import REDACTED, configure_logging, redact


def test_redact_drops_content_fields_at_any_depth() -> None:
    event = {
        "event": "request_done",
        "prompt": "my secret prompt",
        "messages": [{"role": "user", "content": "hello"}],
        "upstream": {"body": {"choices": [{"text": "completion text"}]}, "status": 200},
        "details": [{"content": "nested text", "tokens": 3}],
        "tokens": 12,
    }
    out = redact(None, "info", dict(event))
    assert out == {
        "event": "request_done",
        "upstream": {"status": 200},
        "details": [{"tokens": 3}],
        "tokens": 12,
    }


def test_redact_masks_secrets_wherever_they_appear() -> None:
    secret = "tg-" + "A1b2" * 12
    out = redact(None, "info", {"event": f"auth with {secret}", "api_key": "anything", "note": secret})
    assert secret not in json.dumps(out)
    assert out["api_key"] == REDACTED
    assert out["event"].startswith("auth with tg-")


@pytest.fixture
def reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()  # later tests must not log into this test's captured (closed) stderr
    structlog.contextvars.clear_contextvars()


@pytest.mark.usefixtures("reset_logging")
def test_configured_logger_never_prints_prompt_text(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test", "info")
    structlog.get_logger("t").info(
        "generated", text_output="The capital is Paris", text_input="What is the capital?", tokens=5
    )
    err = capsys.readouterr().err
    line = json.loads(err.strip().splitlines()[-1])
    assert line["event"] == "generated" and line["tokens"] == 5 and line["service"] == "test"
    assert "Paris" not in err and "capital" not in err
