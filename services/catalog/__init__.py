"""Catalog: owns models, deployments, versioned per-token prices, aliases and deprecations.

Serves the catalog API; syncs from provider model lists and price feeds; publishes catalog.v1.
"""
