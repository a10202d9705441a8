"""How flows are served as Prefect deployments (schedules, UI parameters, triggers)."""
