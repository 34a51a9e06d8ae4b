"""Triton client over KServe v2 gRPC, always streaming (decoupled models reject unary ModelInfer).

We speak the generated KServe stub directly rather than ``tritonclient.grpc.aio.stream_infer``,
because only the raw request lets us ask for the empty final response that marks the end of a
decoupled stream. Closing the generator cancels the gRPC call, which cancels the Triton request.

A prompt longer than the model's context is the client's error (400 ``context_length_exceeded``, as
a provider's would be), not the backend's: it would fail on every server of the model, so it must
not fall back or count against the breaker. Triton reports it as a plain error message, matched in
``CONTEXT_EXCEEDED``: the CPU model's wording, and TensorRT-LLM-like ones (loosely; not yet checked
against a GPU server).
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Sequence

import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from services.common.errors import (
    ContextTooLong,
    TollgateError,
    UnsupportedByBackend,
    UpstreamError,
    UpstreamTimeout,
)
from services.router.backends import (
    COUNT_UNSUPPORTED,
    EMBEDDINGS_UNSUPPORTED,
    ChatTurn,
    EmbeddingRequest,
    Embeddings,
    GenerationRequest,
    Outcome,
    refuse_thinking,
)
from services.router.backends.triton_tensors import (
    build_count_request,
    build_embed_request,
    build_request,
    decode_outputs,
    fp32_rows,
    is_final,
)
from services.router.chat_template import render

COUNT_TIMEOUT_SECONDS = 10.0  # tokenizing one prompt; a server that takes longer is in trouble
# one call's texts through the whole model: the CPU model takes ~8 s for 2,048 tokens, ~90 s for 8,192
EMBED_TIMEOUT_SECONDS = 300.0
INPUT_INDEX = re.compile(r"input\[(\d+)\]")  # how the model names a text, counted within its call
EMBED_BATCH = 64  # texts per call: the max_batch_size of the CPU `embedding` model
CONTEXT_EXCEEDED = re.compile(
    r"context holds|maximum context length|(prompt|input) length .*exceed|exceeds? (the )?max(imum)? "
    r"(input|sequence) length|max_input_len",
    re.IGNORECASE,
)


def preprocessing_model(generation_model: str) -> str | None:
    """TensorRT-LLM's repository names its models ``ensemble`` and ``preprocessing``; a server with
    several keeps a shared prefix (``llama_ensemble``, ``llama_preprocessing``). Any other name has no
    known tokenizer model beside it."""
    if not generation_model.endswith("ensemble"):
        return None
    return generation_model.removesuffix("ensemble") + "preprocessing"


def _prompt(request: GenerationRequest) -> str:
    """What the model is sent as ``text_input``, or the refusal of what this backend cannot take."""
    refuse_thinking(request)
    if request.provider_options:
        names = ", ".join(sorted(request.provider_options))
        raise UnsupportedByBackend(
            f"parameters not supported by this self-hosted model: {names}",
            param=_public_name(min(request.provider_options)),
        )
    if request.prompt_tokens is not None:
        raise UnsupportedByBackend(
            "a prompt of token ids is not supported by this self-hosted model (its tokenizer reads text): "
            "send the prompt as a string", param="prompt",
        )
    if request.messages is None:
        return request.prompt or ""
    _refuse_tool_results(request.messages)
    if any(turn.images for turn in request.messages):
        raise UnsupportedByBackend(
            "image input is not supported by this self-hosted model (it takes text only)", param="messages"
        )
    return render(request.chat_template, request.messages)


def backend_error(message: str, param: str = "messages") -> TollgateError:
    """The error a Triton error message stands for; ``param`` is the client's name for what was too
    long (a generation's ``messages``, an embedding's ``input``)."""
    if CONTEXT_EXCEEDED.search(message):
        what = "prompt" if param == "messages" else param
        return ContextTooLong(f"The {what} does not fit this model's context: {message[:300]}", param=param)
    return UpstreamError(f"triton: {message}")


def _infer_error(exc: grpc.aio.AioRpcError, unsupported: str) -> TollgateError:
    """A unary ModelInfer's failure: a server without the model cannot do this (``unsupported``: the
    router asks the next deployment), a deadline is a timeout, anything else the server's error."""
    details = exc.details() or ""
    missing = exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE)
    if missing and "unknown model" in details.lower():
        return UnsupportedByBackend(unsupported)
    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UpstreamTimeout(f"triton: {details}")
    return UpstreamError(f"triton: {exc.code().name}: {details}")


def _texts(request: EmbeddingRequest) -> list[str]:
    """The texts to embed, or the refusal of what the model cannot do: token ids (the server's
    tokenizer reads text), and another size than its hidden size (one size, no truncation)."""
    if request.dimensions is not None:
        raise UnsupportedByBackend(
            "dimensions is not supported by this self-hosted model (its vectors have one size)",
            param="dimensions",
        )
    texts = [item for item in request.inputs if isinstance(item, str)]
    if len(texts) != len(request.inputs):
        raise UnsupportedByBackend(
            "token ids as input are not supported by this self-hosted model (it takes text only)",
            param="input",
        )
    return texts


class TritonBackend:
    def __init__(self, url: str, model: str = "ensemble") -> None:
        self._channel = grpc.aio.insecure_channel(url)
        self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        self.model = model

    async def ready(self) -> bool:
        server = await self._stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=2)
        if not server.ready:
            return False
        model = await self._stub.ModelReady(service_pb2.ModelReadyRequest(name=self.model), timeout=2)
        return bool(model.ready)

    async def generate(
        self, request: GenerationRequest, outcome: Outcome
    ) -> AsyncGenerator[list[str], None]:
        """Yield each streamed response's text (one piece per response); fill ``outcome`` with the
        backend's token counts as they arrive."""
        prompt = _prompt(request)
        sampling = request.sampling
        infer = build_request(self.model, request.request_id, prompt, sampling)
        call = self._stub.ModelStreamInfer(iter([infer]))
        try:
            async for message in call:
                if message.error_message:
                    raise backend_error(message.error_message)
                response = message.infer_response
                outputs = decode_outputs(response)
                counts_in = outputs.get("num_input_tokens")
                counts_out = outputs.get("num_output_tokens")
                if counts_in:
                    outcome.input_tokens = int(counts_in[0])
                    outcome.usage_reported = True
                if counts_out:
                    # as in TensorRT-LLM: each streamed response counts its own tokens
                    outcome.output_tokens += int(counts_out[0])
                texts = outputs.get("text_output")
                if texts:
                    text = bytes(texts[0]).decode("utf-8", errors="replace")
                    if text:
                        yield [text]
                if is_final(response):
                    break
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise UpstreamTimeout(f"triton: {exc.details()}") from exc
            raise UpstreamError(f"triton: {exc.code().name}: {exc.details()}") from exc
        finally:
            call.cancel()
        if outcome.output_tokens >= sampling.max_tokens:
            outcome.finish_reason = "length"

    async def count_tokens(self, request: GenerationRequest) -> int:
        """The prompt the model would see (the chat template applied, as for a generation), tokenized
        by TensorRT-LLM's ``preprocessing`` model on the same server: tokenization alone, no prefill.
        A server without that model cannot count: the router asks the model's next deployment."""
        name = preprocessing_model(self.model)
        if name is None:
            raise UnsupportedByBackend(COUNT_UNSUPPORTED)
        infer = build_count_request(name, request.request_id, _prompt(request))
        try:
            response = await self._stub.ModelInfer(infer, timeout=COUNT_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as exc:
            raise _infer_error(exc, COUNT_UNSUPPORTED) from exc
        counts = decode_outputs(response).get("REQUEST_INPUT_LEN")
        if not counts or not isinstance(counts[0], int):
            raise UpstreamError("triton: the preprocessing model sent no REQUEST_INPUT_LEN")
        return counts[0]

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """The texts' vectors from the server's embedding model (this deployment's model, the CPU
        repository's ``embedding``), ``EMBED_BATCH`` texts per call, one call after another. A server
        without that model cannot embed: the router asks the model's next deployment."""
        texts = _texts(request)
        vectors: list[bytes] = []
        input_tokens = 0
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            rows, tokens = await self._embed_batch(request.request_id, batch, start)
            vectors.extend(rows)
            input_tokens += tokens
        return Embeddings(vectors=tuple(vectors), input_tokens=input_tokens)

    async def _embed_batch(
        self, request_id: str, texts: list[str], first: int
    ) -> tuple[tuple[bytes, ...], int]:
        """One ModelInfer: a vector per text, in order, and the texts' tokens together. ``first`` is the
        client's index of the first text, for an error that names one (``input[i]``)."""
        infer = build_embed_request(self.model, request_id, texts)
        try:
            response = await self._stub.ModelInfer(infer, timeout=EMBED_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as exc:
            details = exc.details() or ""
            if CONTEXT_EXCEEDED.search(details):  # the model's answer to one text: the client's error
                renumbered = INPUT_INDEX.sub(lambda m: f"input[{first + int(m.group(1))}]", details)
                raise backend_error(renumbered, param="input") from None
            raise _infer_error(exc, EMBEDDINGS_UNSUPPORTED) from exc
        try:
            rows = fp32_rows(response, "embedding")
        except ValueError as exc:
            raise UpstreamError(f"triton: {self.model}: {exc}") from None
        counts = decode_outputs(response).get("num_input_tokens")
        if len(rows) != len(texts) or not counts or len(counts) != len(texts):
            raise UpstreamError(f"triton: {self.model} answered {len(rows)} vectors for {len(texts)} texts")
        return rows, sum(int(count) for count in counts)

    async def close(self) -> None:
        await self._channel.close(None)


def _refuse_tool_results(messages: Sequence[ChatTurn]) -> None:
    """A tool's result answers a call this model cannot make (it is served without tools): rendered
    as a turn of its own it would be text the model was never trained to read, so the request goes to
    a deployment with tool calling, or the client hears why."""
    if any(turn.role == "tool" for turn in messages):  # "messages": the turns are not the client's 1:1
        raise UnsupportedByBackend(
            "tool results are not supported by this self-hosted model (it is served without tool calling)",
            param="messages",
        )


def _public_name(option: str) -> str:
    """The client's name for an option: earlier tool calls travel as ``assistant_tool_calls`` but
    were sent as the messages' ``tool_calls``."""
    return "messages" if option == "assistant_tool_calls" else option
