"""The Triton backend's pure parts: which model counts a deployment's tokens."""

from __future__ import annotations

import pytest

from services.router.backends.triton import preprocessing_model


@pytest.mark.parametrize(("generation", "counting"), [
    ("ensemble", "preprocessing"),  # TensorRT-LLM's repository, and the CPU stand-in
    ("llama_ensemble", "llama_preprocessing"),  # several models on one server, by prefix
    ("tensorrt_llm_bls", None),  # no known tokenizer model beside it: the deployment cannot count
    ("smollm2", None),
])
def test_the_preprocessing_model_beside_a_deployments_model(generation: str, counting: str | None) -> None:
    assert preprocessing_model(generation) == counting
