"""Prefect flows: control flow only, composed of tasks."""
