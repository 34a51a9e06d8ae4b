"""usage.v1 from the edge: one event per admitted request, written ahead to a durable local spool and
sent to Kafka from there, so neither a Kafka outage nor an edge restart loses a billed request."""
