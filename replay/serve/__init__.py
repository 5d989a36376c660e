"""`replay serve`: the analysis service over the same library the command line uses.

Upload a trace, follow its ingest and report as a background job, read the datasets,
ask SQL and the named queries of them, compare two. `replay.serve.app.create_app` builds
the ASGI app, `replay.serve.server.run` serves it with uvicorn. (Nothing is imported
here: a job's worker process imports only what it runs.)
"""
