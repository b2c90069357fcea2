"""Helpers several test packages share: fakes, BullMQ workloads, suites of services, the gateway."""
