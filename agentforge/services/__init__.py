"""Plain functions that compose the database (models/) with git, GitHub and runtimes.

Tasks wrap these one call each; tests call them directly without Prefect.
"""
