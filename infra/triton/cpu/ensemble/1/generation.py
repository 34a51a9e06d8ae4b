"""Token-by-token generation on top of ``llama_numpy``: sampling, stop conditions, streamed text.

Kept apart from ``model.py`` so that it imports nothing from Triton and can be exercised directly
(``python generation.py MODEL_DIR PROMPT``) without a server.

Semantics follow TensorRT-LLM where it defines them: greedy unless ``temperature > 0`` and a
``top_k``/``top_p`` filter is set (TRT-LLM: top_k=0 and top_p=0 means greedy); ``top_k == 1`` is greedy
too. Stop words are matched on decoded text and are not part of the output (OpenAI semantics);
text is held back while it could still be the start of a stop word.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from llama_numpy import LlamaModel
from tokenizers import Tokenizer
from tokenizers.decoders import DecodeStream

PREFILL_CHUNK = 256  # bounds the [heads, T, S] attention scores of a long prompt


@dataclass
class SamplingParams:
    max_tokens: int
    end_id: int
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0
    seed: int | None = None
    min_tokens: int = 0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    bad_words: list[list[int]] = field(default_factory=list)
    stop_words: list[str] = field(default_factory=list)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0 or self.top_k == 1 or (self.top_k <= 0 and self.top_p <= 0.0)


@dataclass
class Step:
    """What one generated token adds: its (possibly empty) complete-character text delta."""

    text: str
    token_id: int
    logprob: float
    finish_reason: str | None = None  # "stop" | "length" once the sequence is done


class Sampler:
    """Turns logits into the next token for one request (owns the request's RNG)."""

    def __init__(self, params: SamplingParams, prompt_ids: list[int], vocab_size: int) -> None:
        self.params = params
        self.rng = np.random.default_rng(params.seed)
        self.seen = np.zeros(vocab_size, dtype=bool)  # for the repetition penalty: prompt + output
        self.seen[np.asarray(prompt_ids, dtype=np.int64)] = True
        self.counts = np.zeros(vocab_size, dtype=np.int64)  # output only: presence/frequency
        self.generated: list[int] = []

    def _adjust(self, logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        p = self.params
        x = logits.astype(np.float64)
        if p.repetition_penalty != 1.0:
            hit = x[self.seen]
            x[self.seen] = np.where(hit > 0, hit / p.repetition_penalty, hit * p.repetition_penalty)
        if p.presence_penalty or p.frequency_penalty:
            x -= p.presence_penalty * (self.counts > 0) + p.frequency_penalty * self.counts
        for words in p.bad_words:  # ban the last token of a bad sequence whose prefix was just generated
            prefix = words[:-1]
            if not prefix or self.generated[-len(prefix) :] == prefix:
                x[words[-1]] = -np.inf
        if len(self.generated) < p.min_tokens:
            x[p.end_id] = -np.inf
        return x

    def next(self, logits: npt.NDArray[np.float32]) -> tuple[int, float]:
        """Pick a token; return it with its log-probability under the distribution it came from."""
        p = self.params
        x = self._adjust(logits)
        if p.greedy:
            token = int(np.argmax(x))
            logprob = float(x[token] - np.logaddexp.reduce(x))
        else:
            x = x / p.temperature
            if p.top_k > 0 and p.top_k < x.size:
                cutoff = np.partition(x, -p.top_k)[-p.top_k]
                x[x < cutoff] = -np.inf
            probs = np.exp(x - x.max())
            probs /= probs.sum()
            if 0.0 < p.top_p < 1.0:
                order = np.argsort(-probs)
                keep = np.cumsum(probs[order]) - probs[order] < p.top_p  # smallest set reaching top_p
                mask = np.zeros_like(probs)
                mask[order[keep]] = 1.0
                probs *= mask
                probs /= probs.sum()
            token = int(self.rng.choice(probs.size, p=probs))
            logprob = float(np.log(probs[token]))
        self.generated.append(token)
        self.seen[token] = True
        self.counts[token] += 1
        return token, logprob


class TextStream:
    """Incremental detokenizer that only ever releases complete UTF-8 characters and no stop word."""

    def __init__(self, tokenizer: Tokenizer, stop_words: list[str]) -> None:
        self.tokenizer = tokenizer
        self.decoder = DecodeStream(skip_special_tokens=True)
        self.stop_words = [w for w in stop_words if w]
        self.pending = ""

    def push(self, token_id: int) -> tuple[str, bool]:
        """Feed one token; return (text safe to emit now, whether a stop word was hit)."""
        self.pending += self.decoder.step(self.tokenizer, token_id) or ""
        hits = [i for i in (self.pending.find(w) for w in self.stop_words) if i >= 0]
        if hits:
            text, self.pending = self.pending[: min(hits)], ""
            return text, True
        hold = 0
        for word in self.stop_words:  # longest tail of pending that may grow into a stop word
            for n in range(min(len(word) - 1, len(self.pending)), hold, -1):
                if self.pending.endswith(word[:n]):
                    hold = n
                    break
        cut = len(self.pending) - hold
        text, self.pending = self.pending[:cut], self.pending[cut:]
        return text, False

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return text


def generate(
    model: LlamaModel,
    tokenizer: Tokenizer,
    prompt_ids: list[int],
    params: SamplingParams,
    is_cancelled: Callable[[], bool] = lambda: False,
) -> Iterator[Step]:
    """Yield one Step per generated token; stops on end_id, a stop word, max_tokens or cancellation.

    A cancelled request just stops yielding (no final Step): the caller checks ``is_cancelled``.
    """
    if not prompt_ids:
        raise ValueError("text_input encodes to zero tokens")
    if params.max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    room = model.config.max_positions - len(prompt_ids)
    if room < 1:
        limit = model.config.max_positions
        raise ValueError(f"prompt has {len(prompt_ids)} tokens; the context holds {limit}")
    max_tokens = min(params.max_tokens, room)
    cache = model.new_cache(len(prompt_ids) + max_tokens)
    for start in range(0, len(prompt_ids), PREFILL_CHUNK):
        if is_cancelled():
            return
        logits = model.forward(prompt_ids[start : start + PREFILL_CHUNK], cache)
    sampler = Sampler(params, prompt_ids, model.config.vocab_size)
    stream = TextStream(tokenizer, params.stop_words)
    for index in range(max_tokens):
        if is_cancelled():
            return
        token, logprob = sampler.next(logits)
        if token == params.end_id:
            yield Step(stream.flush(), token, logprob, "stop")
            return
        text, stopped = stream.push(token)
        if stopped:
            yield Step(text, token, logprob, "stop")
            return
        if index == max_tokens - 1:
            yield Step(text + stream.flush(), token, logprob, "length")
            return
        yield Step(text, token, logprob)
        logits = model.forward([token], cache)


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    lm, tok = LlamaModel(folder), Tokenizer.from_file(str(folder / "tokenizer.json"))
    settings = SamplingParams(max_tokens=64, end_id=lm.config.eos_token_id, temperature=0.0)
    for step in generate(lm, tok, tok.encode(sys.argv[2]).ids, settings):
        print(step.text, end="", flush=True)
    print()
