"""Triton Python-backend glue for the CPU `ensemble` model (tensor contract of TensorRT-LLM).

Why threads: the model is decoupled, so ``execute`` may return before a request is answered. Each
request gets a thread that generates and sends responses as tokens appear; numpy releases the GIL
inside BLAS, so a few requests make progress together while ``execute`` stays free to accept more.

Response semantics (mirroring TRT-LLM's ensemble):
- stream=true: one response per generated token, ``text_output`` holding only complete characters
  produced by that token (may be empty), then an empty response flagged COMPLETE_FINAL.
- stream=false: one response with the whole text (prefixed by ``text_input`` unless
  ``exclude_input_in_output``), then the final flag.
- ``num_output_tokens`` (when asked) counts the tokens a response covers: 1 per streamed response,
  all generated tokens otherwise; the end token counts when the model sampled it. The prompt echo
  is text only and never counted. ``num_input_tokens`` is the prompt length from the tokenizer.
- A cancelled request stops before its next token; only the final flag is sent.

Not type-checked by mypy: ``triton_python_backend_utils`` exists only inside the Triton stub.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from generation import SamplingParams, Step, generate
from llama_numpy import LlamaModel
from tokenizers import Tokenizer

MODEL_DIR_ENV = "TOLLGATE_TRITON_MODEL_DIR"
FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


def _parameter(config: dict[str, Any], key: str, default: str) -> str:
    value = str(config.get("parameters", {}).get(key, {}).get("string_value", ""))
    return default if not value or value.startswith("${") else value


class RequestInputs:
    """The inputs of one request, read while ``execute`` still owns the request."""

    def __init__(self, request: Any, tokenizer: Tokenizer, default_end_id: int) -> None:
        def first(name: str, default: Any) -> Any:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                return default
            array = tensor.as_numpy()
            if array.shape[0] != 1:
                raise ValueError(f"{name}: send one prompt per request (batch size 1)")
            return array.reshape(-1)[0] if array.size else default

        def strings(name: str) -> list[str]:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            values = [] if tensor is None else tensor.as_numpy().reshape(-1).tolist()
            return [v.decode() if isinstance(v, bytes) else str(v) for v in values if v]

        raw = first("text_input", b"")
        self.prompt = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        self.prompt_ids: list[int] = tokenizer.encode(self.prompt).ids
        self.stream = bool(first("stream", False))
        self.exclude_input = bool(first("exclude_input_in_output", False))
        self.want_input_count = bool(first("return_num_input_tokens", False))
        self.want_output_count = bool(first("return_num_output_tokens", False))
        self.want_log_probs = bool(first("return_log_probs", False))
        seed = first("seed", None)
        bad = [tokenizer.encode(w).ids for w in strings("bad_words")]
        self.params = SamplingParams(
            max_tokens=int(first("max_tokens", 0)),
            end_id=int(first("end_id", default_end_id)),
            temperature=float(first("temperature", 1.0)),
            top_k=int(first("top_k", 0)),
            top_p=float(first("top_p", 0.0)),
            seed=None if seed is None else int(seed),
            min_tokens=int(first("min_tokens", 0)),
            repetition_penalty=float(first("repetition_penalty", 1.0)),
            presence_penalty=float(first("presence_penalty", 0.0)),
            frequency_penalty=float(first("frequency_penalty", 0.0)),
            bad_words=[ids for ids in bad if ids],
            stop_words=strings("stop_words"),
        )


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        model_dir = os.environ.get(MODEL_DIR_ENV) or _parameter(config, "model_dir", "")
        if not model_dir:
            raise pb_utils.TritonModelException(f"set parameter model_dir or ${MODEL_DIR_ENV}")
        self.model = LlamaModel(Path(model_dir))
        self.tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self.slots = threading.Semaphore(int(_parameter(config, "max_concurrent_requests", "4")))
        self.stopping = threading.Event()
        self.threads: set[threading.Thread] = set()
        self.lock = threading.Lock()
        self._watch_sigterm()
        pb_utils.Logger.log_info(f"ensemble: serving {model_dir}")

    def _watch_sigterm(self) -> None:
        """Stop generating as soon as the server's process group gets SIGTERM.

        Why: on shutdown Triton unloads a decoupled model only after its requests sent their final
        flag, and calls ``finalize`` after that, so one long generation would hold ``tritonserver``
        for its whole exit timeout. The stub's own SIGTERM handler does nothing; ours only writes to
        a wakeup fd (at C level, while the stub's main thread waits in C++) that a thread watches.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd)
        signal.signal(signal.SIGTERM, lambda signum, frame: None)

        def watch() -> None:
            while signal.SIGTERM not in os.read(read_fd, 64):
                pass
            self.stopping.set()

        threading.Thread(target=watch, name="sigterm-watch", daemon=True).start()

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            sender = request.get_response_sender()
            try:
                inputs = RequestInputs(request, self.tokenizer, self.model.config.eos_token_id)
            except (ValueError, UnicodeDecodeError) as exc:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), flags=FINAL)
                continue
            thread = threading.Thread(target=self._serve, args=(request, sender, inputs), daemon=True)
            with self.lock:
                self.threads.add(thread)
            thread.start()
        return None

    def _response(self, inputs: RequestInputs, text: str, steps: list[Step], cum: float) -> Any:
        tensors = [pb_utils.Tensor("text_output", np.array([[text.encode("utf-8")]], dtype=np.object_))]
        if inputs.want_input_count:
            count = np.array([[len(inputs.prompt_ids)]], np.int32)
            tensors.append(pb_utils.Tensor("num_input_tokens", count))
        if inputs.want_output_count:
            tensors.append(pb_utils.Tensor("num_output_tokens", np.array([[len(steps)]], np.int32)))
        if inputs.want_log_probs:
            tensors.append(pb_utils.Tensor("cum_log_probs", np.array([[cum]], np.float32)))
            logprobs = np.array([[[s.logprob for s in steps]]], np.float32)
            tensors.append(pb_utils.Tensor("output_log_probs", logprobs))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _serve(self, request: Any, sender: Any, inputs: RequestInputs) -> None:
        def cancelled() -> bool:
            return self.stopping.is_set() or bool(request.is_cancelled())

        steps: list[Step] = []
        cum = 0.0
        try:
            with self.slots:
                for step in generate(self.model, self.tokenizer, inputs.prompt_ids, inputs.params, cancelled):
                    steps.append(step)
                    cum += step.logprob
                    if inputs.stream:
                        sender.send(self._response(inputs, step.text, [step], cum))
            finished = bool(steps) and steps[-1].finish_reason is not None
            if not finished and request.is_cancelled():
                pb_utils.Logger.log_info(f"ensemble: request cancelled after {len(steps)} tokens")
            elif not finished:  # only shutdown stops a request that was not cancelled
                raise RuntimeError(f"server shutting down; stopped after {len(steps)} tokens")
            elif not inputs.stream:
                text = "".join(s.text for s in steps)
                if not inputs.exclude_input:
                    text = inputs.prompt + text
                sender.send(self._response(inputs, text, steps, cum))
            sender.send(flags=FINAL)
        except Exception as exc:  # noqa: BLE001 - every failure must still end the request
            pb_utils.Logger.log_error(f"ensemble: request failed: {exc!r}")
            error = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
            with contextlib.suppress(Exception):  # the client may be gone already
                sender.send(error, flags=FINAL)
        finally:
            with self.lock:
                self.threads.discard(threading.current_thread())

    def finalize(self) -> None:
        self.stopping.set()
        with self.lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join(timeout=5)
