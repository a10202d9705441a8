"""Prefect tasks: one retriable unit of I/O each, thin wrappers over agentforge.services."""
