"""Router: the internal Generate stream; Triton client (TensorRT-LLM tensor contract) and provider
adapters; fallback, retries, breakers; batch consumer of jobs.v1.
"""
