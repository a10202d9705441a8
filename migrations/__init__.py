"""Alembic environment and versions (a package so the scripts ship with an install)."""
