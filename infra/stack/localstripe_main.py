"""``python -m infra.stack.localstripe_main --port N --store FILE``: localstripe, tamed for the stack.

localstripe's own ``start()`` listens on every interface (``::``) and pickles its whole store to
``/tmp/localstripe.pickle`` on every write, which would expose a fake payment API to the network and
let two runs (tests and ``make run``) read each other's customers. This entry point serves the same
aiohttp app on 127.0.0.1 only and points the store's load/dump at a file inside the run folder.
"""

from __future__ import annotations

import argparse
import logging
import pickle
from pathlib import Path

from aiohttp import web
from localstripe import resources, server  # type: ignore[import-untyped]


def _use_store_file(path: Path) -> None:
    """Replace the store's hard-coded /tmp path with ``path`` (load now, dump on every write)."""
    store_cls = resources.Store

    def load(self: dict[str, object]) -> None:
        try:
            with path.open("rb") as f:
                old = pickle.load(f)  # noqa: S301 - our own file, written by this process
        except FileNotFoundError:
            return
        self.clear()
        self.update(old)

    def dump(self: dict[str, object]) -> None:
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)  # a crash mid-write never leaves a truncated store behind

    store_cls.try_load_from_disk = load
    store_cls.dump_to_disk = dump


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--from-scratch", action="store_true")
    args = parser.parse_args()
    args.store.parent.mkdir(parents=True, exist_ok=True)
    _use_store_file(args.store)
    if not args.from_scratch:
        resources.store.try_load_from_disk()
    logging.basicConfig(level=logging.INFO)
    web.run_app(server.app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
