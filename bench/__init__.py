"""``make bench``: the platform against the zero-delay replaying upstream, measured in one run.

Edge and router run pinned to core 0; the upstream, the load generator (``bench.loadgen``, its own
process) and the infrastructure run on core 1. Every figure is a ratio against the same upstream
driven directly by the same generator in the same run. A benchmark, not a test: it prints, it does
not assert.
"""
