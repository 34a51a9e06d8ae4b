"""Code every service shares: settings, logging, errors, event schemas, Kafka helpers, ops endpoints.

Nothing here knows about any one service; services never import each other, only this package.
"""
