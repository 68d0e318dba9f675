"""Plain, typed pipeline steps plus thin Prefect ``@task`` wrappers."""
