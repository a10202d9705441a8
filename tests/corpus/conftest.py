"""Fixtures of the corpus tests: the lock tests' component library."""

from tests.lock.conftest import lib  # noqa: F401
