"""Worker Monitor benchmarks; `python -m bench.heartbeat` measures HeartbeatService."""
