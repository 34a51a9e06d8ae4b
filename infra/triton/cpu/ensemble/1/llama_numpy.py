"""A Llama decoder forward pass in plain numpy, with a KV cache.

Why numpy: the CPU stand-in for TensorRT-LLM must run on 2-core machines without torch (PyPI's torch
is the 3 GB CUDA build). A 135M-parameter model is small enough that float32 BLAS matrix-vector
products give usable speed, and numpy keeps the model readable and free of native build steps.

Layout (written by ``infra.triton.convert_model``): ``config.json`` with Hugging Face Llama keys and
``model.safetensors`` with Hugging Face tensor names. Q/K rows use the Hugging Face "half" rotary
layout (``rope_layout: "half"``): llama.cpp's interleaved permutation is undone at conversion time, so
this file and any HF Llama implementation agree on the same weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class LlamaConfig:
    """The shape of the network; everything the forward pass needs besides weights."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    rope_theta: float
    rms_eps: float
    max_positions: int
    bos_token_id: int
    eos_token_id: int

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @classmethod
    def from_json(cls, path: Path) -> LlamaConfig:
        raw = json.loads(path.read_text())
        if raw.get("rope_layout", "half") != "half":
            raise ValueError(f"{path}: only rope_layout 'half' is implemented")
        return cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            intermediate_size=int(raw["intermediate_size"]),
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=int(raw["num_attention_heads"]),
            num_kv_heads=int(raw["num_key_value_heads"]),
            rope_theta=float(raw["rope_theta"]),
            rms_eps=float(raw["rms_norm_eps"]),
            max_positions=int(raw["max_position_embeddings"]),
            bos_token_id=int(raw["bos_token_id"]),
            eos_token_id=int(raw["eos_token_id"]),
        )


@dataclass
class Layer:
    """One decoder block; Q/K/V and gate/up are fused so each step is two fewer BLAS calls."""

    attn_norm: F32
    wqkv: F32  # [(heads + 2 * kv_heads) * head_dim, hidden]
    wo: F32  # [hidden, heads * head_dim]
    ffn_norm: F32
    w_gate_up: F32  # [2 * intermediate, hidden]
    w_down: F32  # [hidden, intermediate]


class KVCache:
    """Keys and values of every position seen so far, for one sequence.

    Preallocated for the whole request (prompt + max_tokens): ``np.empty`` only reserves address space,
    so pages are touched as positions fill, and decoding never reallocates.
    """

    def __init__(self, config: LlamaConfig, capacity: int) -> None:
        shape = (config.num_layers, config.num_kv_heads, capacity, config.head_dim)
        self.keys: F32 = np.empty(shape, dtype=np.float32)
        self.values: F32 = np.empty(shape, dtype=np.float32)
        self.capacity = capacity
        self.length = 0


def rms_norm(x: F32, weight: F32, eps: float) -> F32:
    variance = np.mean(np.square(x), axis=-1, keepdims=True)
    normed: F32 = (x / np.sqrt(variance + eps) * weight).astype(np.float32, copy=False)
    return normed


def silu(x: F32) -> F32:
    return (x / (1.0 + np.exp(-x))).astype(np.float32, copy=False)


class LlamaModel:
    """Weights plus a ``forward`` that extends a KV cache by some tokens and returns the last logits,
    and the ``hidden_states`` of a whole sequence (for embeddings), both over the same layers."""

    def __init__(self, model_dir: Path) -> None:
        self.config = LlamaConfig.from_json(model_dir / "config.json")
        tensors = load_file(str(model_dir / "model.safetensors"))
        cfg = self.config

        def get(name: str) -> F32:
            return np.ascontiguousarray(tensors.pop(name), dtype=np.float32)

        self.embed = get("model.embed_tokens.weight")
        self.lm_head = get("lm_head.weight") if "lm_head.weight" in tensors else self.embed
        self.final_norm = get("model.norm.weight")
        self.layers: list[Layer] = []
        for i in range(cfg.num_layers):
            p = f"model.layers.{i}."
            self.layers.append(
                Layer(
                    attn_norm=get(p + "input_layernorm.weight"),
                    wqkv=np.concatenate(
                        [get(p + f"self_attn.{n}_proj.weight") for n in ("q", "k", "v")], axis=0
                    ),
                    wo=get(p + "self_attn.o_proj.weight"),
                    ffn_norm=get(p + "post_attention_layernorm.weight"),
                    w_gate_up=np.concatenate(
                        [get(p + "mlp.gate_proj.weight"), get(p + "mlp.up_proj.weight")], axis=0
                    ),
                    w_down=get(p + "mlp.down_proj.weight"),
                )
            )
        half = cfg.head_dim // 2
        exponents = np.arange(half, dtype=np.float64) * 2.0 / cfg.head_dim
        self.inv_freq = (1.0 / (cfg.rope_theta**exponents)).astype(np.float64)
        self.scale = float(1.0 / np.sqrt(cfg.head_dim))

    def new_cache(self, capacity: int) -> KVCache:
        return KVCache(self.config, min(capacity, self.config.max_positions))

    def _rope(self, x: F32, positions: npt.NDArray[np.int64]) -> F32:
        """Rotate [heads, T, head_dim] by position, HF "rotate_half" convention."""
        angles = positions[:, None].astype(np.float64) * self.inv_freq[None, :]
        cos = np.cos(angles).astype(np.float32)
        sin = np.sin(angles).astype(np.float32)
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)

    def forward(self, token_ids: list[int], cache: KVCache) -> F32:
        """Run ``token_ids`` at the next positions of ``cache``; return logits of the last one.

        Returns float32 [vocab]. Raises ValueError when the cache has no room left.
        """
        last = rms_norm(self._layers(token_ids, cache)[-1], self.final_norm, self.config.rms_eps)
        return (self.lm_head @ last).astype(np.float32, copy=False)

    def hidden_states(self, token_ids: list[int], chunk: int = 256) -> F32:
        """The final (normed) hidden states of every position of ``token_ids``, as one sequence from
        position 0: float32 [T, hidden], what an embedding pools.

        A fresh cache holds the sequence; it runs ``chunk`` positions at a time, which bounds the
        [heads, T, S] attention scores of a long text as generation's prefill does. Raises ValueError
        for no tokens or more than the model's positions.
        """
        if not 0 < len(token_ids) <= self.config.max_positions:
            raise ValueError(f"{len(token_ids)} tokens: a sequence holds 1 to {self.config.max_positions}")
        cache = self.new_cache(len(token_ids))
        states = [self._layers(token_ids[i : i + chunk], cache) for i in range(0, len(token_ids), chunk)]
        return rms_norm(np.concatenate(states), self.final_norm, self.config.rms_eps)

    def _layers(self, token_ids: list[int], cache: KVCache) -> F32:
        """The decoder layers over ``token_ids`` at the next positions of ``cache`` (extended by them):
        the residual stream of each position, float32 [T, hidden], before the final norm (the caller
        norms the rows it needs: logits want the last one only)."""
        cfg = self.config
        start, count = cache.length, len(token_ids)
        end = start + count
        if end > cache.capacity:
            raise ValueError(f"context full: {end} > {cache.capacity} positions")
        hd, nh, nkv = cfg.head_dim, cfg.num_heads, cfg.num_kv_heads
        group = nh // nkv
        positions = np.arange(start, end, dtype=np.int64)
        mask: F32 | None = None
        if count > 1:  # causal: query t sees cache positions <= start + t
            visible = np.arange(end)[None, :] <= positions[:, None]
            mask = np.where(visible, 0.0, -np.inf).astype(np.float32)

        x: F32 = self.embed[np.asarray(token_ids, dtype=np.int64)]
        for li, layer in enumerate(self.layers):
            h = rms_norm(x, layer.attn_norm, cfg.rms_eps)
            qkv = h @ layer.wqkv.T
            q = qkv[:, : nh * hd].reshape(count, nh, hd).transpose(1, 0, 2)
            k = qkv[:, nh * hd : (nh + nkv) * hd].reshape(count, nkv, hd).transpose(1, 0, 2)
            v = qkv[:, (nh + nkv) * hd :].reshape(count, nkv, hd).transpose(1, 0, 2)
            cache.keys[li, :, start:end] = self._rope(k, positions)
            cache.values[li, :, start:end] = v
            grouped_q = self._rope(q, positions).reshape(nkv, group, count, hd)
            keys = cache.keys[li, :, :end]  # [nkv, S, hd]
            scores = np.matmul(grouped_q, keys[:, None].swapaxes(-1, -2)) * self.scale  # [nkv, g, T, S]
            if mask is not None:
                scores = scores + mask
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs = scores / scores.sum(axis=-1, keepdims=True)
            attn = np.matmul(probs, cache.values[li, :, :end][:, None])  # [nkv, g, T, hd]
            merged: F32 = attn.reshape(nh, count, hd).transpose(1, 0, 2).reshape(count, nh * hd)
            x = x + merged @ layer.wo.T
            h = rms_norm(x, layer.ffn_norm, cfg.rms_eps)
            gate_up = h @ layer.w_gate_up.T
            gate, up = gate_up[:, : cfg.intermediate_size], gate_up[:, cfg.intermediate_size :]
            x = (x + (silu(gate) * up) @ layer.w_down.T).astype(np.float32, copy=False)
        cache.length = end
        return x
