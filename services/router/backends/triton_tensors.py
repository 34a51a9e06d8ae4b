"""The TensorRT-LLM ``ensemble`` tensor contract, encoded as KServe v2 ``ModelInferRequest`` tensors.

Names and dtypes follow TensorRT-LLM's triton_backend ``ensemble`` model: batch dimension present,
so every scalar is shape [1, 1] and word lists are [1, n]. The CPU stand-in model speaks the same
contract, so this module is the same for CPU and GPU deployments.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TypeAlias

from tritonclient.grpc import service_pb2

from services.router.backends import Sampling

Tensor: TypeAlias = service_pb2.ModelInferRequest.InferInputTensor


def _bytes_tensor(name: str, values: Sequence[str], shape: list[int]) -> tuple[Tensor, bytes]:
    raw = b"".join(struct.pack("<I", len(b)) + b for b in (v.encode() for v in values))
    return Tensor(name=name, datatype="BYTES", shape=shape), raw


def _scalar(name: str, datatype: str, fmt: str, value: float | int | bool) -> tuple[Tensor, bytes]:
    return Tensor(name=name, datatype=datatype, shape=[1, 1]), struct.pack(fmt, value)


def build_request(
    model: str, request_id: str, prompt: str, sampling: Sampling
) -> service_pb2.ModelInferRequest:
    tensors: list[tuple[Tensor, bytes]] = [
        _bytes_tensor("text_input", [prompt], [1, 1]),
        _scalar("max_tokens", "INT32", "<i", sampling.max_tokens),
        _scalar("stream", "BOOL", "<?", True),
        _scalar("return_num_input_tokens", "BOOL", "<?", True),
        _scalar("return_num_output_tokens", "BOOL", "<?", True),
        _scalar("exclude_input_in_output", "BOOL", "<?", True),
    ]
    if sampling.temperature is not None:
        tensors.append(_scalar("temperature", "FP32", "<f", sampling.temperature))
    if sampling.top_p is not None:
        tensors.append(_scalar("top_p", "FP32", "<f", sampling.top_p))
    if sampling.top_k is not None:
        tensors.append(_scalar("top_k", "INT32", "<i", sampling.top_k))
    if sampling.seed is not None:
        tensors.append(_scalar("seed", "UINT64", "<Q", sampling.seed))
    if sampling.stop:
        tensors.append(_bytes_tensor("stop_words", list(sampling.stop), [1, len(sampling.stop)]))
    request = service_pb2.ModelInferRequest(model_name=model, id=request_id)
    for tensor, raw in tensors:
        request.inputs.append(tensor)
        request.raw_input_contents.append(raw)
    for name in ("text_output", "num_input_tokens", "num_output_tokens"):
        request.outputs.append(service_pb2.ModelInferRequest.InferRequestedOutputTensor(name=name))
    # Decoupled models end with a response flagged final; ask for it even when it carries no data.
    request.parameters["triton_enable_empty_final_response"].bool_param = True
    return request


def build_count_request(model: str, request_id: str, prompt: str) -> service_pb2.ModelInferRequest:
    """TensorRT-LLM's ``preprocessing`` model asked for the prompt's length (unary: it is not
    decoupled). REQUEST_OUTPUT_LEN is required by its contract and unused for a count."""
    request = service_pb2.ModelInferRequest(model_name=model, id=request_id)
    query = _bytes_tensor("QUERY", [prompt], [1, 1])
    for tensor, raw in (query, _scalar("REQUEST_OUTPUT_LEN", "INT32", "<i", 1)):
        request.inputs.append(tensor)
        request.raw_input_contents.append(raw)
    request.outputs.append(service_pb2.ModelInferRequest.InferRequestedOutputTensor(name="REQUEST_INPUT_LEN"))
    return request


def build_embed_request(model: str, request_id: str, texts: Sequence[str]) -> service_pb2.ModelInferRequest:
    """The CPU repository's ``embedding`` model asked for the texts' vectors and token counts (unary);
    the texts are its batch, [N, 1]."""
    request = service_pb2.ModelInferRequest(model_name=model, id=request_id)
    tensor, raw = _bytes_tensor("text_input", texts, [len(texts), 1])
    request.inputs.append(tensor)
    request.raw_input_contents.append(raw)
    for name in ("embedding", "num_input_tokens"):
        request.outputs.append(service_pb2.ModelInferRequest.InferRequestedOutputTensor(name=name))
    return request


def fp32_rows(response: service_pb2.ModelInferResponse, name: str) -> tuple[bytes, ...]:
    """The rows of a [N, dim] FP32 output, each as the server's raw bytes: float32 in its byte order,
    little-endian on the x86-64 and Arm servers Triton runs on. Sliced, never read as Python floats;
    ValueError when the output is missing or not that shape."""
    for tensor, raw in zip(response.outputs, response.raw_output_contents, strict=False):
        if tensor.name != name:
            continue
        if tensor.datatype != "FP32" or len(tensor.shape) != 2:
            raise ValueError(f"{name}: expected FP32 [N, dim], got {tensor.datatype} {list(tensor.shape)}")
        rows, width = tensor.shape[0], tensor.shape[1] * 4
        if len(raw) != rows * width:
            raise ValueError(f"{name}: {len(raw)} bytes for shape {list(tensor.shape)}")
        return tuple(raw[i * width : (i + 1) * width] for i in range(rows))
    raise ValueError(f"no {name} output")


def decode_outputs(response: service_pb2.ModelInferResponse) -> dict[str, list[bytes] | list[int]]:
    """Output tensors by name: BYTES as a list of byte strings, INT32 as a list of ints."""
    out: dict[str, list[bytes] | list[int]] = {}
    for tensor, raw in zip(response.outputs, response.raw_output_contents, strict=False):
        if tensor.datatype == "BYTES":
            items: list[bytes] = []
            pos = 0
            while pos + 4 <= len(raw):
                (size,) = struct.unpack_from("<I", raw, pos)
                items.append(raw[pos + 4 : pos + 4 + size])
                pos += 4 + size
            out[tensor.name] = items
        elif tensor.datatype == "INT32":
            out[tensor.name] = [v for (v,) in struct.iter_unpack("<i", raw)]
    return out


def is_final(response: service_pb2.ModelInferResponse) -> bool:
    param = response.parameters.get("triton_final_response")
    return bool(param is not None and param.bool_param)
