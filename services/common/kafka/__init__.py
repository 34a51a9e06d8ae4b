"""Kafka helpers: one producer (acks=all, idempotent), the batch-consumer pattern, snapshot followers."""
