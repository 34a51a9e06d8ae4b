"""Starts and stops the real servers Tollgate runs on (Kafka, PostgreSQL, Redis, Triton, ...).

One module per server. `make run` uses them through `python -m infra.stack`, the test suite through
its fixtures, so both start the same binaries the same way: own data dir and port under a run folder,
PID recorded, stopped by PID (never by name).
"""
