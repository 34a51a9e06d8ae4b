"""Edge: the public front door. Auth from an in-memory keys.v1 snapshot, admission in Redis, SSE
streaming from the router's Generate stream, and the side-channel events (requests.v1, usage.v1).
"""
