"""The official OpenAI Node SDK (npm ``openai``, pinned in tests/node/package-lock.json) against the
platform, unchanged: ``tests/node/chat.mjs`` does a chat completion, a streamed one with usage, a
model list and (given an embedding model) embeddings, and prints one JSON line. ``make test`` installs its dependencies (``npm ci``)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from array import array
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import TRITON_MODEL, Stack
from tests.upstream.harness import recorded_embeddings

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SCRIPT = NODE_DIR / "chat.mjs"
RUN_TIMEOUT = 60.0
INSTALL_HINT = "run `make test`, or `npm ci --prefix tests/node --no-audit --no-fund` from the repository root"


@pytest.fixture(scope="module", autouse=True)
def node() -> str:
    """Node.js and the pinned SDK, checked before the stack starts. Fails, never skips, when either is
    missing or another SDK version is installed."""
    binary = shutil.which("node")
    if binary is None:
        pytest.fail("`node` (Node.js 20+) is not on PATH: the Node SDK test needs it")
    lock = json.loads((NODE_DIR / "package-lock.json").read_text(encoding="utf-8"))
    pinned = lock["packages"]["node_modules/openai"]["version"]
    installed = NODE_DIR / "node_modules/openai/package.json"
    if not installed.is_file():
        pytest.fail(f"tests/node/node_modules is missing the `openai` package: {INSTALL_HINT}")
    version = json.loads(installed.read_text(encoding="utf-8"))["version"]
    if version != pinned:
        pytest.fail(f"tests/node/node_modules has openai {version}, the lock pins {pinned}: {INSTALL_HINT}")
    return binary


async def run_node(node: str, stack: Stack, model: str, embed_model: str = "") -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "NODE_OPTIONS"))}
    env.update(BASE_URL=stack.base_url, API_KEY=stack.key, MODEL=model, EMBED_MODEL=embed_model)
    proc = await asyncio.create_subprocess_exec(
        node, str(SCRIPT), cwd=NODE_DIR.parents[1], env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"node {SCRIPT.name} did not finish within {RUN_TIMEOUT}s")
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    assert proc.returncode == 0, f"node exited {proc.returncode}\nstdout: {stdout}\nstderr: {stderr}"
    lines = stdout.strip().splitlines()
    assert lines, f"no output\nstderr: {stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


async def test_node_sdk_chat_stream_and_models_on_a_provider_model(node: str, stack: Stack) -> None:
    model = stack.model("oa-ok")
    result = await run_node(node, stack, model, embed_model=stack.model("oa-embed-two"))

    assert result["content"], result
    assert result["role"] == "assistant" and result["object"] == "chat.completion"
    assert result["request_id"].startswith("req_")
    assert result["id"] == "chatcmpl-" + result["request_id"].removeprefix("req_")
    assert result["stream_request_id"].startswith("req_")
    assert result["stream_request_id"] != result["request_id"]
    # the upstream replays the same answer either way
    assert result["stream_text"] == result["content"]
    assert result["finish_reason"] and result["stream_finish_reason"] == result["finish_reason"]
    usage, streamed_usage = result["usage"], result["stream_usage"]
    assert usage and streamed_usage and usage == streamed_usage
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert model in result["model_ids"] and TRITON_MODEL in result["model_ids"]
    sent = stack.upstream.requests_for(f"ok:{model}")
    assert len(sent) >= 2 and any(r.get("stream_options") == {"include_usage": True} for r in sent)
    # embeddings: the SDK's base64 request decoded to the provider's float32 vectors, exactly
    assert result["embedding_model"] == stack.model("oa-embed-two") and result["embedding_usage"]["prompt_tokens"] == 13
    assert [e["index"] for e in result["embeddings"]] == [0, 1]
    assert [e["embedding"] for e in result["embeddings"]] == [
        list(array("f", v)) for v in recorded_embeddings("two")]


async def test_node_sdk_on_triton(node: str, stack: Stack) -> None:
    result = await run_node(node, stack, TRITON_MODEL)

    assert result["content"], result
    assert result["request_id"].startswith("req_")
    usage = result["usage"]
    assert usage and usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 16
    assert result["stream_text"]
    assert result["stream_usage"] and 0 < result["stream_usage"]["completion_tokens"] <= 16
    assert TRITON_MODEL in result["model_ids"]
