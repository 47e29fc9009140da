"""Latency / throughput / peak-memory engine: the workload kinds (:mod:`.kinds`), cells (:mod:`.cells`), the timing
loop (:func:`.timing.time_calls`), memory probes, worker processes and the runner; :func:`.api.measure_cells`
measures planned cells into a store."""
