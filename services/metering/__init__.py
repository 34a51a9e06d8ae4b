"""Metering: the only owner of ClickHouse. Consumes usage.v1 into raw rows and rollups; serves usage."""
