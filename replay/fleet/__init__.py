"""Fleet scale: many traces, one answer, optionally on a Dask distributed cluster.

Each input's ingest and each configuration group's replay is a task (`tasks`); the
parent schedules them (`run`), then builds one report for the fleet (`report`, rendered
by `render`). Without a scheduler the same steps run in this process and its pool.
"""
