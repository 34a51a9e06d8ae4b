"""``python -m infra.stack.assets``: every download and one-time conversion, cached, idempotent.

Kafka jars (Maven Central), the Triton server layout (from the pinned nvidia-pytriton wheel), the
SmolLM2 GGUF → safetensors conversion and the tiny random model. A warm run only checks stamps.
"""

from __future__ import annotations

import time

from infra.stack.kafka import KafkaServer
from infra.stack.triton import ensure_triton_home
from infra.triton.convert_model import ensure_converted


def main() -> int:
    for what, step in (
        ("kafka jars", KafkaServer.ensure_jars),
        ("triton server", ensure_triton_home),
        ("smollm2 weights", lambda: ensure_converted(tiny=False)),
        ("tiny model", lambda: ensure_converted(tiny=True)),
    ):
        started = time.monotonic()
        where = step()
        print(f"assets: {what:<16} {time.monotonic() - started:6.1f}s  {where}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
