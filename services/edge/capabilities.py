"""Which endpoints a model serves, by its catalog capabilities: an embedding model writes no text and
a chat model makes no vectors, so asking either for the other is the client's mistake, answered
before anything is admitted or forwarded (no backend would do better than an unclear error).

Only a model that lists ``embeddings`` serves ``/v1/embeddings``. A model is refused text generation
only when it lists ``embeddings`` and neither ``chat`` nor ``completions``: a catalog entry without
capabilities (older entries, hand-made ones) keeps generating as before.
"""

from __future__ import annotations

from services.common.errors import InvalidRequest
from services.common.events.catalog import ModelEntry

EMBEDDINGS = "embeddings"
GENERATES = frozenset({"chat", "completions"})


def check_embeds(model: ModelEntry, requested: str) -> None:
    if EMBEDDINGS not in model.capabilities:
        raise InvalidRequest(
            f"The model `{requested}` does not serve embeddings: use an embedding model (GET /v1/models "
            "lists each model's capabilities).", param="model", code="model_not_supported",
        )


def check_generates(model: ModelEntry, requested: str) -> None:
    if EMBEDDINGS in model.capabilities and GENERATES.isdisjoint(model.capabilities):
        raise InvalidRequest(
            f"The model `{requested}` is an embedding model: it serves POST /v1/embeddings, not text "
            "generation.", param="model", code="model_not_supported",
        )
