"""HTTP handlers of the edge, one module per API family; the route table is ``services/edge/app.py``."""
