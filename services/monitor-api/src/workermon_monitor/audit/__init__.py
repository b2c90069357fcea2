"""The audit log: its table, its store, and the auditor that wraps every action."""
