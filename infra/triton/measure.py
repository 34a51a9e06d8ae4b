"""Measure the CPU Triton stand-in: start-to-ready, memory, time to first token, decode speed.

Why a script and not a test: the numbers depend on the machine and go into docs/operations.md by
hand; tests only assert behaviour. Run: ``python -m infra.triton.measure [--max-tokens N] [--json]``.
Every server it starts lives in a temporary run folder on free ports and is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infra.stack.ports import free_port
from infra.stack.triton import MODEL_NAME, TritonServer
from infra.triton.convert_model import SMOLLM2, TINY

PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
LONG_PROMPT = (
    "<|im_start|>user\nWrite a short story about a lighthouse keeper.<|im_end|>\n<|im_start|>assistant\n"
)
TYPES = {bool: ("BOOL", np.bool_), int: ("INT32", np.int32), float: ("FP32", np.float32)}


def build_request(prompt: str, max_tokens: int, **options: Any) -> Any:
    """A ModelInferRequest with shape-[1,1] tensors of the TensorRT-LLM ensemble contract.

    Built from the generated protobuf rather than ``tritonclient.grpc.aio.stream_infer`` because only
    the raw request can ask for the empty final response: that client rejects every ``triton_*``
    parameter as reserved. Options: seed is sent as UINT64, lists as STRING [1, n].
    """
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=MODEL_NAME)

    def add(name: str, array: np.ndarray[Any, Any], kind: str) -> None:
        tensor = service_pb2.ModelInferRequest.InferInputTensor(name=name, datatype=kind, shape=array.shape)
        request.inputs.append(tensor)
        if kind == "BYTES":
            request.raw_input_contents.append(b"".join(struct.pack("<I", len(v)) + v for v in array.flat))
        else:
            request.raw_input_contents.append(array.tobytes())

    add("text_input", np.array([[prompt.encode()]], dtype=np.object_), "BYTES")
    add("max_tokens", np.array([[max_tokens]], dtype=np.int32), "INT32")
    for name, value in options.items():
        if name == "seed":
            add(name, np.array([[value]], dtype=np.uint64), "UINT64")
        elif isinstance(value, list):
            add(name, np.array([[w.encode() for w in value]], dtype=np.object_), "BYTES")
        else:
            kind, dtype = TYPES[type(value)]
            add(name, np.array([[value]], dtype=dtype), kind)
    request.parameters["triton_enable_empty_final_response"].bool_param = True
    return request


@dataclass
class StreamResult:
    text: str = ""
    responses: int = 0
    output_tokens: int = 0  # sum of num_output_tokens over responses
    input_tokens: int | None = None
    first_token_s: float | None = None
    last_token_s: float = 0.0
    error: str | None = None
    deltas: list[str] = field(default_factory=list)
    final_seen: bool = False  # a response flagged triton_final_response arrived
    final_empty: bool = False  # ... and it carried no tensors

    @property
    def tokens_per_s(self) -> float:
        if self.first_token_s is None or self.output_tokens < 2:
            return 0.0
        return (self.output_tokens - 1) / max(self.last_token_s - self.first_token_s, 1e-9)


async def stream_request(
    url: str, prompt: str, max_tokens: int, stop_after: int | None = None, **options: Any
) -> StreamResult:
    """One request over gRPC ModelStreamInfer; ``stop_after=N`` cancels the call after N token responses."""
    import grpc
    from tritonclient.grpc import InferResult, service_pb2_grpc

    options.setdefault("return_num_input_tokens", True)
    options.setdefault("return_num_output_tokens", True)
    result = StreamResult()
    channel = grpc.aio.insecure_channel(url)
    call = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer(
        iter([build_request(prompt, max_tokens, **options)])
    )
    started = time.perf_counter()
    try:
        async for message in call:
            if message.error_message:
                result.error = message.error_message
                break
            response = InferResult(message.infer_response)
            text = response.as_numpy("text_output")
            if text is not None:
                now = time.perf_counter() - started
                result.first_token_s = now if result.first_token_s is None else result.first_token_s
                result.last_token_s = now
                result.responses += 1
                delta = text.reshape(-1)[0].decode()
                result.deltas.append(delta)
                result.text += delta
                counts = response.as_numpy("num_output_tokens")
                result.output_tokens += int(counts.reshape(-1)[0]) if counts is not None else 0
                inputs = response.as_numpy("num_input_tokens")
                result.input_tokens = int(inputs.reshape(-1)[0]) if inputs is not None else None
            if message.infer_response.parameters["triton_final_response"].bool_param:
                result.final_seen = True
                result.final_empty = text is None
                break
            if stop_after is not None and result.responses >= stop_after:
                break
    finally:
        call.cancel()
        await channel.close(None)
    return result


@dataclass
class Measurement:
    model: str
    ready_s: float
    rss_ready_mb: float
    rss_after_mb: float
    ttft_cold_s: float  # first request after ready
    ttft_s: float
    tokens_per_s: float
    output_tokens: int
    answer: str  # greedy reply to PROMPT
    text: str  # greedy reply to LONG_PROMPT (the timed request)


def measure(model: str, max_tokens: int) -> Measurement:
    with tempfile.TemporaryDirectory(prefix="tollgate-triton-") as run_dir:
        server = TritonServer(Path(run_dir), free_port(), free_port(), free_port(), model=model)
        server.ensure_assets()
        started = time.perf_counter()
        server.start()
        try:
            server.wait_ready(timeout=180)
            ready = time.perf_counter() - started
            rss_ready = server.process_group_rss()
            cold = asyncio.run(stream_request(server.grpc_url, PROMPT, 32, stream=True, temperature=0.0))
            timed = stream_request(server.grpc_url, LONG_PROMPT, max_tokens, stream=True, temperature=0.0)
            result = asyncio.run(timed)
            if result.error:
                raise RuntimeError(result.error)
            return Measurement(
                model=model,
                ready_s=round(ready, 2),
                rss_ready_mb=round(rss_ready / 2**20, 1),
                rss_after_mb=round(server.process_group_rss() / 2**20, 1),
                ttft_cold_s=round(cold.first_token_s or 0.0, 3),
                ttft_s=round(result.first_token_s or 0.0, 3),
                tokens_per_s=round(result.tokens_per_s, 1),
                output_tokens=result.output_tokens,
                answer=cold.text,
                text=result.text,
            )
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--model", action="append", help=f"default: {SMOLLM2} and {TINY}")
    args = parser.parse_args(argv)
    results = [measure(model, args.max_tokens) for model in args.model or [SMOLLM2, TINY]]
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return 0
    for r in results:
        print(
            f"{r.model}: ready {r.ready_s}s, RSS {r.rss_ready_mb} MB at ready / {r.rss_after_mb} MB after,"
            f" TTFT {r.ttft_s}s (first request {r.ttft_cold_s}s),"
            f" {r.tokens_per_s} tok/s over {r.output_tokens} tokens"
        )
        print(f"  answer: {r.answer!r}\n  timed:  {r.text[:160]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
