"""A sync source as the operator declares it (``CATALOG_SYNC_SOURCES``, a JSON list).

A source names one feed: its format, where to read it (``url`` or ``file``, exactly one), which of its
names concern this catalog (``include`` patterns, ``strip_prefix``), and, for model lists, where the
models it adds are served (``backend``, ``endpoint``, ``credentials_env`` — the *name* of the variable
holding the provider key, never the key). The management API can only run declared sources: a client
cannot make the catalog fetch a URL or read a file of its choosing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

Format = Literal["openai-models", "litellm", "openrouter"]
FORMATS: tuple[Format, ...] = ("openai-models", "litellm", "openrouter")
Policy = Literal["ignore", "add-disabled", "add"]


class SyncSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    format: Format
    url: str | None = Field(
        default=None, pattern=r"^https?://", max_length=2048,
        description="openai-models: the provider's base URL (…/v1); price feeds: the document's URL",
    )
    file: Path | None = None
    include: tuple[str, ...] = Field(
        default=("*",), min_length=1, description="fnmatch patterns of feed names"
    )
    strip_prefix: str = Field(default="", max_length=64, description="e.g. \"openai/\" for OpenRouter ids")
    provider: str | None = Field(
        default=None, max_length=64, description="litellm: only entries whose litellm_provider is this"
    )
    unknown_models: Policy | None = Field(default=None, description="overrides CATALOG_SYNC_UNKNOWN_MODELS")
    backend: Literal["openai", "anthropic"] = "openai"
    endpoint: str | None = Field(
        default=None, max_length=512, description="deployments of models this source adds (default: url)"
    )
    credentials_env: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$")
    default_context_length: int = Field(default=8192, gt=0)
    default_max_output_tokens: int = Field(default=4096, gt=0)

    @model_validator(mode="after")
    def _one_location(self) -> Self:
        if (self.url is None) == (self.file is None):
            raise ValueError(f"sync source {self.name}: give exactly one of url and file")
        return self

    def at(self, *, url: str | None = None, file: Path | None = None) -> SyncSource:
        """The same source read from another place (``sync --url/--file`` on the command line)."""
        if url is None and file is None:
            return self
        return self.model_copy(update={"url": url, "file": file})
