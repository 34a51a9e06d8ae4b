"""Triton Python-backend glue for the CPU `embedding` model: texts in, one unit vector each.

Mean pooling over the final normed hidden states, then L2 normalisation: the model is a causal
decoder, not trained for embeddings, so this gives the vectors a plain, documented meaning (similar
texts point alike) rather than a tuned one. Tokens are counted with the `preprocessing` model's
tokenizer file and call (``Tokenizer.encode(text).ids``), so what an embedding bills equals what the
same text counts there.

Texts run one after another on this one instance: a second request waits in Triton's queue, and a
cancelled one (a client that gave up) stops before its next text.

Not type-checked by mypy: ``triton_python_backend_utils`` exists only inside the Triton stub.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer

# The forward pass is the ensemble's own file, not a copy: render_repository copies the whole CPU
# repository, so the sibling model's version folder is importable here (appended: it shadows nothing).
sys.path.append(str(Path(__file__).resolve().parents[2] / "ensemble" / "1"))
from llama_numpy import F32, LlamaModel

MODEL_DIR_ENV = "TOLLGATE_TRITON_MODEL_DIR"


def embedding(model: LlamaModel, token_ids: list[int]) -> F32:
    """The unit-length mean of the text's final hidden states, float32 [hidden_size]."""
    mean = model.hidden_states(token_ids).mean(axis=0, dtype=np.float32)
    return (mean / np.linalg.norm(mean)).astype(np.float32, copy=False)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        configured = str(config.get("parameters", {}).get("model_dir", {}).get("string_value", ""))
        model_dir = os.environ.get(MODEL_DIR_ENV) or ("" if configured.startswith("${") else configured)
        if not model_dir:
            raise pb_utils.TritonModelException(f"set parameter model_dir or ${MODEL_DIR_ENV}")
        self.model = LlamaModel(Path(model_dir))
        self.tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        pb_utils.Logger.log_info(f"embedding: serving {model_dir}")

    def execute(self, requests: list[Any]) -> list[Any]:
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        try:
            ids = [self._token_ids(index, raw) for index, raw in enumerate(self._texts(request))]
            vectors = []
            for token_ids in ids:
                if request.is_cancelled():
                    raise ValueError("request cancelled")
                vectors.append(embedding(self.model, token_ids))
        except (ValueError, UnicodeDecodeError) as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("embedding", np.stack(vectors)),
            pb_utils.Tensor("num_input_tokens", np.array([[len(t)] for t in ids], np.int32)),
        ])

    def _texts(self, request: Any) -> list[Any]:
        return pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy().reshape(-1).tolist()

    def _token_ids(self, index: int, raw: Any) -> list[int]:
        """The text's tokens, or ValueError naming the input (``input[i]``, the client's index) that
        cannot be embedded."""
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        ids: list[int] = self.tokenizer.encode(text).ids
        limit = self.model.config.max_positions
        if not ids:
            raise ValueError(f"input[{index}] has no tokens: an empty text has no embedding")
        if len(ids) > limit:
            raise ValueError(
                f"input[{index}] has {len(ids)} tokens, which exceeds the maximum sequence length {limit}"
            )
        return ids
