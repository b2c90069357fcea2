"""Incident notifications: channels, payloads, the delivery ledger and the taskiq tasks that send."""
