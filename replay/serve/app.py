"""The ASGI app: routes of the API and the pages over one `Service`."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ingest.errors import QueryError, ReplayError
from replay.queries import named_queries, named_query
from replay.serve import pages
from replay.serve.catalogue import FINAL, Catalogue, Job
from replay.serve.compare import compare
from replay.serve.config import ServeConfig
from replay.serve.datasets import REPORT_HTML, REPORT_JSON, Datasets, NotFound, provenance
from replay.serve.guard import LoopbackHostsOnly, bearer_ok, same_origin
from replay.serve.ids import new_dataset_id, new_job_id, valid_job_id
from replay.serve.jobs import JobManager
from replay.serve.upload import UploadError, receive_trace

#: Seconds between looks at a job's state for its event stream.
EVENT_POLL = 0.2
#: Bytes of multipart framing allowed around the file when a request declares its length.
FRAMING = 1 << 16


class BadRequest(ReplayError):
    """A request body the API cannot use."""


class Service:
    """The service's state: catalogue, datasets, jobs; `close` stops the jobs."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.catalogue = Catalogue(config.data)
        self.jobs = JobManager(config, self.catalogue)
        self.datasets = Datasets(config.data, self.catalogue, config.sql_limits)

    def close(self) -> None:
        self.jobs.close()
        self.datasets.close()
        self.catalogue.close()


def json_response(content: Any, status: int = 200) -> Response:
    """JSON of anything the API answers (dates and such as text)."""
    return Response(json.dumps(content, default=str), status,
                    media_type="application/json")


def error(message: str, status: int) -> Response:
    return json_response({"error": message}, status)


Handler = Callable[[Request], Awaitable[Response]]


def create_app(config: ServeConfig) -> Starlette:
    """The app serving `config.data`; its jobs stop when the app shuts down (or with
    `app.state.service.close()` where no lifespan runs)."""
    service = Service(config)
    token_required = config.token is not None

    def guarded(handler: Handler) -> Handler:
        """Library errors as JSON: 404 for unknown datasets, 400 for the rest."""
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except NotFound as e:
                return error(str(e), 404)
            except QueryError as e:
                return json_response({"error": str(e), "hint": e.hint}, 400)
            except ReplayError as e:
                return error(str(e), 400)
        return run

    def writes(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            if not same_origin(request):
                return error("writes from another site's page are refused", 403)
            if not bearer_ok(request, config.token):
                resp = error("writes need 'Authorization: Bearer TOKEN'", 401)
                resp.headers["WWW-Authenticate"] = "Bearer"
                return resp
            return await handler(request)
        return run

    # --- API ------------------------------------------------------------------------
    async def list_datasets(request: Request) -> Response:
        return json_response(await run_in_threadpool(service.datasets.list))

    async def get_dataset(request: Request) -> Response:
        return json_response(await run_in_threadpool(service.datasets.meta,
                                                     request.path_params["id"]))

    async def delete_dataset(request: Request) -> Response:
        dataset = request.path_params["id"]
        if service.jobs.busy(dataset):
            return error(f"{dataset}: a job is still making it", 409)
        await run_in_threadpool(service.datasets.delete, dataset)
        return json_response({"deleted": dataset})

    async def report_json(request: Request) -> Response:
        return FileResponse(service.datasets.report_file(request.path_params["id"],
                                                         REPORT_JSON))

    async def body_json(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise BadRequest("the body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the body is not a JSON object")
        return body

    async def sql(request: Request) -> Response:
        query = (await body_json(request)).get("sql")
        if not isinstance(query, str) or not query.strip():
            return error('give {"sql": "..."}', 400)
        statements = query_statements(query)
        if statements != 1:
            return error(f"give one statement, not {statements}", 400)
        result = await run_in_threadpool(service.datasets.query, request.path_params["id"],
                                         query)
        return json_response(result.public())

    async def list_queries(request: Request) -> Response:
        return json_response([
            {"name": q.name, "description": q.description,
             "params": [{"name": p.name, "type": p.type, "default": p.default,
                         "help": p.help} for p in q.params]}
            for q in named_queries().values()])

    async def run_query(request: Request) -> Response:
        given = (await body_json(request)).get("params") or {}
        if not isinstance(given, dict):
            return error('give {"params": {"NAME": "VALUE", ...}}', 400)
        q = named_query(request.path_params["name"])
        bound = q.bind({str(k): None if v is None else str(v) for k, v in given.items()})
        result = await run_in_threadpool(service.datasets.query, request.path_params["id"],
                                         q.sql, bound)
        return json_response(result.public())

    async def compare_api(request: Request) -> Response:
        a, b = request.query_params.get("a"), request.query_params.get("b")
        if not a or not b:
            return error("give two datasets: /api/compare?a=ID&b=ID", 400)
        return json_response(await run_in_threadpool(compare, service.datasets, a, b))

    async def upload(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > config.max_upload + FRAMING:
            return error(f"upload larger than the limit of {config.max_upload} bytes", 413)
        job_id = new_job_id()
        directory = service.jobs.upload_dir(job_id)
        try:
            received = await receive_trace(request.headers.get("content-type", ""),
                                           request.stream(), directory, config.max_upload)
        except UploadError as e:
            await run_in_threadpool(_remove, directory)
            return error(str(e), e.status)
        except BaseException:
            await run_in_threadpool(_remove, directory)
            raise
        dataset = new_dataset_id(received.filename)
        while (config.data / dataset).exists() or service.jobs.busy(dataset):
            dataset = new_dataset_id(received.filename)
        job = Job(job_id, dataset, received.filename)
        service.jobs.submit(job, received.path)
        return json_response({"dataset": job.dataset, "job": job.id}, 202)

    def find_job(request: Request) -> Job | None:
        job_id = request.path_params["id"]
        return service.jobs.get(job_id) if valid_job_id(job_id) else None

    async def list_jobs(request: Request) -> Response:
        return json_response([j.public() for j in service.jobs.list()])

    async def get_job(request: Request) -> Response:
        job = find_job(request)
        return json_response(job.public()) if job else error("no such job", 404)

    async def job_events(request: Request) -> Response:
        job = find_job(request)
        if job is None:
            return error("no such job", 404)

        async def stream() -> AsyncIterator[str]:
            last = None
            while True:
                current = service.jobs.get(job.id)
                state = current.public()
                if state != last:
                    yield f"data: {json.dumps(state)}\n\n"
                    last = state
                if current.state in FINAL or await request.is_disconnected():
                    return
                await asyncio.sleep(EVENT_POLL)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    # --- pages ----------------------------------------------------------------------
    async def index(request: Request) -> Response:
        datasets = await run_in_threadpool(service.datasets.list)
        return HTMLResponse(pages.index_page(datasets, service.jobs.list(),
                                             config.max_upload, token_required))

    async def dataset_page(request: Request) -> Response:
        dataset = request.path_params["id"]
        meta = await run_in_threadpool(service.datasets.meta, dataset)
        has_report = (service.datasets.path(dataset) / REPORT_HTML).is_file()
        return HTMLResponse(pages.dataset_page(
            dataset, provenance(dataset, meta), has_report, list(named_queries().values()),
            token_required))

    async def report_html(request: Request) -> Response:
        return FileResponse(service.datasets.report_file(request.path_params["id"],
                                                         REPORT_HTML))

    async def compare_html(request: Request) -> Response:
        ids = [d["id"] for d in await run_in_threadpool(service.datasets.list)
               if d["report"]]
        a, b = request.query_params.get("a"), request.query_params.get("b")
        result, problem = None, None
        if a and b:
            try:
                result = await run_in_threadpool(compare, service.datasets, a, b)
            except ReplayError as e:
                problem = str(e)
        return HTMLResponse(pages.compare_page(ids, a, b, result, problem, token_required))

    def html_errors(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except ReplayError as e:
                status = 404 if isinstance(e, NotFound) else 400
                return HTMLResponse(pages.error_page(str(e), token_required), status)
        return run

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(service.close)

    static = StaticFiles(directory=str(resources.files("replay.serve") / "static"))
    routes = [
        Route("/", html_errors(index)),
        Route("/datasets/{id}", html_errors(dataset_page)),
        Route("/datasets/{id}/report", html_errors(report_html)),
        Route("/compare", html_errors(compare_html)),
        Mount("/static", static, name="static"),
        Route("/api/datasets", guarded(list_datasets)),
        Route("/api/datasets/{id}", guarded(get_dataset)),
        Route("/api/datasets/{id}", guarded(writes(delete_dataset)), methods=["DELETE"]),
        Route("/api/datasets/{id}/report.json", guarded(report_json)),
        Route("/api/datasets/{id}/sql", guarded(sql), methods=["POST"]),
        Route("/api/datasets/{id}/query/{name}", guarded(run_query), methods=["POST"]),
        Route("/api/queries", guarded(list_queries)),
        Route("/api/compare", guarded(compare_api)),
        Route("/api/traces", guarded(writes(upload)), methods=["POST"]),
        Route("/api/jobs", guarded(list_jobs)),
        Route("/api/jobs/{id}", guarded(get_job)),
        Route("/api/jobs/{id}/events", guarded(job_events)),
    ]
    middleware = [] if token_required else [Middleware(LoopbackHostsOnly)]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.service = service
    return app


def query_statements(query: str) -> int:
    """How many statements `query` holds (a parse error: one, for DuckDB to report)."""
    try:
        return len(duckdb.extract_statements(query))
    except duckdb.Error:
        return 1


def _remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
