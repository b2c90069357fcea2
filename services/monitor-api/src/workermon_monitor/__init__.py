"""Worker Monitor MonitorService: the facade over queues, workers and history, with audited actions."""
