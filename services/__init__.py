"""Tollgate services. Each sub-package is one service, started with ``python -m services.<name>``."""
