"""Public wire types: OpenAI and Anthropic request/response shapes, mirroring each public spec.

Only the boundary (``services.edge.convert``) turns these into the router's internal messages, so the
rest of the edge never depends on a vendor's field names.
"""
