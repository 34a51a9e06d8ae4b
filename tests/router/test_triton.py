"""The Triton backend's parts that need no server: which model counts a deployment's tokens, and what
it refuses before sending anything."""

from __future__ import annotations

import pytest

from services.common.errors import UnsupportedByBackend
from services.router.backends import ChatTurn, EmbeddingRequest, GenerationRequest, Image, Outcome, Sampling
from services.router.backends.triton import TritonBackend, preprocessing_model


@pytest.mark.parametrize(("generation", "counting"), [
    ("ensemble", "preprocessing"),  # TensorRT-LLM's repository, and the CPU stand-in
    ("llama_ensemble", "llama_preprocessing"),  # several models on one server, by prefix
    ("tensorrt_llm_bls", None),  # no known tokenizer model beside it: the deployment cannot count
    ("smollm2", None),
])
def test_the_preprocessing_model_beside_a_deployments_model(generation: str, counting: str | None) -> None:
    assert preprocessing_model(generation) == counting


async def test_an_image_is_refused_before_anything_is_sent() -> None:
    """A self-hosted text model takes no images: refused as UnsupportedByBackend, so fallback asks a
    deployment that takes them (or the client hears which parameter), and nothing reaches the server."""
    backend = TritonBackend("127.0.0.1:9")  # nothing listens there: a refusal must come first
    request = GenerationRequest(
        request_id="req_img", upstream_model="ensemble", sampling=Sampling(max_tokens=8),
        messages=(ChatTurn("user", "what is it?", images=(Image(11, "https://example.com/a.png"),)),),
    )
    try:
        with pytest.raises(UnsupportedByBackend) as generating:
            await anext(backend.generate(request, Outcome()))
        with pytest.raises(UnsupportedByBackend) as counting:
            await backend.count_tokens(request)
    finally:
        await backend.close()
    assert generating.value.param == counting.value.param == "messages"
    assert "image input is not supported" in generating.value.message


@pytest.mark.parametrize(("inputs", "dimensions", "param"), [
    (((1, 2, 3),), None, "input"),  # token ids: the server's tokenizer reads text
    (("a text", (1, 2, 3)), None, "input"),
    (("a text",), 256, "dimensions"),  # the model's vectors have one size
])
async def test_what_the_embedding_model_cannot_do_is_refused_before_anything_is_sent(
    inputs: tuple[str | tuple[int, ...], ...], dimensions: int | None, param: str
) -> None:
    """Refused as UnsupportedByBackend (fallback asks a deployment that can, or the client hears
    which parameter); nothing listens at the address, so a request sent would be an UpstreamError."""
    backend = TritonBackend("127.0.0.1:9", "embedding")
    try:
        with pytest.raises(UnsupportedByBackend) as refused:
            await backend.embed(EmbeddingRequest("req_embed", "embedding", inputs, dimensions=dimensions))
    finally:
        await backend.close()
    assert refused.value.param == param
    assert "not supported by this self-hosted model" in refused.value.message
