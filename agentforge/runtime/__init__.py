"""The running instance of a deployed composition: its HTTP server and the process supervisor.

This package runs in a lean child process (``python -m agentforge.runtime.server``), so it
imports no prefect, sqlalchemy, git or github: only starlette, uvicorn, httpx, psycopg and
the pure core.
"""
