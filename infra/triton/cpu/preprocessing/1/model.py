"""Triton Python-backend glue for the CPU `preprocessing` model (TensorRT-LLM's tensor contract).

The prompt's token ids and their count, from the same tokenizer file and the same call as the
`ensemble` model (``Tokenizer.encode(text).ids``), so that what the router counts with it is what a
generation of the same prompt reports as ``num_input_tokens``.

Not type-checked by mypy: ``triton_python_backend_utils`` exists only inside the Triton stub.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer

MODEL_DIR_ENV = "TOLLGATE_TRITON_MODEL_DIR"


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        configured = str(config.get("parameters", {}).get("model_dir", {}).get("string_value", ""))
        model_dir = os.environ.get(MODEL_DIR_ENV) or ("" if configured.startswith("${") else configured)
        if not model_dir:
            raise pb_utils.TritonModelException(f"set parameter model_dir or ${MODEL_DIR_ENV}")
        self.tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        try:
            queries = pb_utils.get_input_tensor_by_name(request, "QUERY").as_numpy().reshape(-1)
            if queries.shape[0] != 1:
                raise ValueError("QUERY: send one prompt per request (batch size 1)")
            raw = queries[0]
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            wanted = pb_utils.get_input_tensor_by_name(request, "REQUEST_OUTPUT_LEN").as_numpy().reshape(-1)
        except (ValueError, UnicodeDecodeError, AttributeError) as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
        ids = self.tokenizer.encode(text).ids
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("INPUT_ID", np.array([ids], np.int32)),
            pb_utils.Tensor("REQUEST_INPUT_LEN", np.array([[len(ids)]], np.int32)),
            pb_utils.Tensor("REQUEST_OUTPUT_LEN", np.array([wanted[:1]], np.int32)),
        ])
