"""Latency / throughput / peak-memory engine: timing loop, memory probes, worker process and runner."""
