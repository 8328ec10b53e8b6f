"""The ``layerflow ui`` web app (starlette): runs table, run pages, comparison, tuning, live events.

Read-only over the runs store: pages come from the SQLite index (the table) and the run
folders (everything else); nothing here writes into a run.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from layerflow.http_token import TokenGate
from layerflow.runs import files as f
from layerflow.runs.ids import looks_like_run_id
from layerflow.runs.metric_goals import default_metric, metric_mode
from layerflow.runs.record import FINISHED_STATUSES, read_record
from layerflow.runs.store import RunNotFoundError, RunStore
from layerflow.ui import run_files
from layerflow.ui.table import TRIAL_COLUMN, RunTable
from layerflow.ui.tuning_page import tuning_charts

HERE = Path(__file__).parent
SHARED = HERE.parent / "runs" / "templates"
TOKEN_COOKIE = "layerflow_ui_token"
PAGE_SIZES = (25, 50, 100, 200)
MAX_COMPARED = 20
_REF = re.compile(r"^(latest(~\d+)?|[0-9A-Za-z-]{4,27})$")


def _templates() -> Jinja2Templates:
    import jinja2

    # The UI's pages, and under runs/ the templates it shares with `layerflow show/compare` (the charts).
    loader = jinja2.ChoiceLoader(
        [jinja2.FileSystemLoader(HERE / "templates"), jinja2.PrefixLoader({"runs": jinja2.FileSystemLoader(SHARED)})]
    )
    env = jinja2.Environment(loader=loader, autoescape=True)
    templates = Jinja2Templates(env=env)
    env.filters["fmt"] = _fmt
    env.filters["js"] = run_files.to_json
    env.filters["size"] = _size
    env.globals["status_done"] = FINISHED_STATUSES
    env.globals["pygments_css"] = _pygments_css()
    return templates


def _pygments_css() -> str:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter().get_style_defs(".code")


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# -- the app's state and the helpers every endpoint shares ---------------------------------
# Endpoints are module-level functions of the request (as Starlette's own examples are written);
# what they share lives on ``request.app.state``: ``store`` (the RunStore), ``table`` (the runs
# table's SQLite mirror) and ``templates``. A new page is one more function and one more Route.


def _store(request: Request) -> RunStore:
    return request.app.state.store


def _table(request: Request) -> RunTable:
    return request.app.state.table


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    """The template ``name`` rendered with ``context`` (and the runs folder, which every page shows)."""
    return request.app.state.templates.TemplateResponse(
        request, name, {"runs_dir": _store(request).path, **context}, status_code=status_code
    )


def not_found(request: Request, message: str) -> Response:
    """The 404 page saying what was not found."""
    return page(request, "error.html.j2", 404, title="Not found", message=message)


def store_missing(request: Request) -> Response | None:
    """The page for a runs folder that is absent or empty; None when it holds runs."""
    store = _store(request)
    if store.path.is_dir() and len(_table(request)):
        return None
    return page(request, "empty.html.j2", exists=store.path.is_dir())


def find_run(request: Request, ref: str) -> Path | None:
    """The folder of run ``ref`` (an id, a unique id prefix, latest, latest~N); never a path."""
    store = _store(request)
    if not _REF.match(ref) or not store.path.is_dir():
        return None
    if looks_like_run_id(ref):
        path = store.path / ref
        return path if path.is_dir() else None
    try:
        return store.resolve(ref)
    except RunNotFoundError:
        return None


def _no_run(request: Request, ref: str) -> Response:
    return not_found(request, f"No run {ref!r} in {_store(request).path}.")


# -- endpoints ------------------------------------------------------------------------------


async def runs_page(request: Request) -> Response:
    """``/``: the runs table, sorted, filtered, paged and with tuning runs grouped as the query asks."""
    empty = store_missing(request)
    if empty is not None:
        return empty
    table = _table(request)
    q = request.query_params
    order = q.get("order") or None
    desc = q.get("desc", "1" if order is None else "0") == "1"
    filter_text = q.get("filter", "").strip()
    group = q.get("group", "1") == "1"
    size = _int(q.get("size"), 50)
    size = size if size in PAGE_SIZES else 50
    error = None
    try:
        result = table.page(
            order=order, decreasing=desc, filter=filter_text, page=_int(q.get("page"), 1), size=size, group_tuning=group
        )
    except ValueError as problem:
        error = str(problem)
        result = table.page(size=size, group_tuning=group)

    def link(**changes: Any) -> str:
        params = {
            "order": order or "",
            "desc": "1" if desc else "0",
            "filter": filter_text,
            "group": "1" if group else "0",
            "size": size,
            "page": result.page,
        }
        params.update(changes)
        return "/?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    return page(
        request,
        "runs.html.j2",
        400 if error else 200,
        table=result,
        order=order,
        desc=desc,
        filter=filter_text,
        group=group,
        size=size,
        sizes=PAGE_SIZES,
        error=error,
        link=link,
    )


async def run_page(request: Request) -> Response:
    """``/runs/{run}``: one run's summary, charts, output, sources and files."""
    ref = request.path_params["run"]
    run_dir = find_run(request, ref)
    if run_dir is None:
        if request.query_params.get("wait") == "1" and looks_like_run_id(ref):
            return page(request, "waiting.html.j2", run_id=ref)
        return _no_run(request, ref)
    if run_dir.name != ref:
        return RedirectResponse(f"/runs/{run_dir.name}", status_code=307)
    record = read_record(run_dir)
    metrics_bytes = _size_of(run_dir / f.METRICS_FILE)
    epochs, metrics_offset = run_files.read_new_metric_lines(run_dir / f.METRICS_FILE, 0)
    log = run_files.read_log(run_dir / f.OUTPUT_FILE, length=64 * 1024)
    sources = run_files.source_files(run_dir)
    script_name = Path(str(record.get("script") or "")).name
    chosen = request.query_params.get("file") or (
        script_name if script_name in sources else (sources[0] if sources else None)
    )
    code = None
    if chosen:
        try:
            text = run_files.read_source(run_dir, chosen)
            code = _highlight(chosen, text) if text is not None else None
        except (FileNotFoundError, run_files.UnsafePathError) as problem:
            code = f'<p class="problems">{_escape(str(problem))}</p>'
    model_files = run_files.folder_files(run_dir, f.MODEL_DIR)
    return page(
        request,
        "run.html.j2",
        run=record,
        curves=run_files.curves(epochs),
        metrics_offset=metrics_offset,
        metrics_partial=metrics_bytes != metrics_offset,
        log=log,
        sources=sources,
        chosen=chosen,
        code=code,
        summary=run_files.small_text(run_dir / f.SUMMARY_FILE),
        plots=run_files.folder_files(run_dir, f.PLOTS_DIR),
        data=run_files.folder_files(run_dir, f.DATA_DIR),
        model_files=model_files,
        live=record.get("status") == "running",
        tab=request.query_params.get("tab", "summary"),
        system=run_files.system_curves(run_dir),
    )


async def output_page(request: Request) -> Response:
    """``/runs/{run}/output``: a window of the run's output (``?format=json`` for the reader's script)."""
    run_dir = find_run(request, request.path_params["run"])
    if run_dir is None:
        return _no_run(request, request.path_params["run"])
    offset = request.query_params.get("offset")
    length = _int(request.query_params.get("length"), run_files.LOG_PAGE_BYTES)
    log = run_files.read_log(run_dir / f.OUTPUT_FILE, None if offset is None else _int(offset, 0), length)
    if request.query_params.get("format") == "json":
        return JSONResponse(log)
    return page(request, "output.html.j2", run_id=run_dir.name, log=log, length=max(1, length))


async def run_file_route(request: Request) -> Response:
    """``/runs/{run}/files/{path}``: one file of the run, sandboxed; never a path outside the run."""
    run_dir = find_run(request, request.path_params["run"])
    if run_dir is None:
        return _no_run(request, request.path_params["run"])
    try:
        path = run_files.run_file(run_dir, request.path_params["path"])
    except run_files.UnsafePathError as problem:
        return page(request, "error.html.j2", 403, title="Refused", message=str(problem))
    except FileNotFoundError as problem:
        return not_found(request, str(problem))
    # A run's files are shown, never run as pages of this site: an HTML or SVG file a script
    # wrote could otherwise script the UI with the user's token cookie.
    return FileResponse(path, headers={"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"})


async def events(request: Request) -> Response:
    """``/runs/{run}/events``: server-sent events of new metrics and output, resumable by Last-Event-ID."""
    from sse_starlette.sse import EventSourceResponse

    from layerflow.ui.live import parse_event_id, run_events

    run_dir = find_run(request, request.path_params["run"])
    if run_dir is None:
        return JSONResponse({"error": f"No run {request.path_params['run']!r}."}, status_code=404)
    offsets = parse_event_id(request.headers.get("last-event-id")) or (
        _int(request.query_params.get("metrics"), 0),
        _int(request.query_params.get("log"), 0),
    )
    return EventSourceResponse(run_events(run_dir, *offsets, request.is_disconnected), ping=15)


async def compare_page(request: Request) -> Response:
    """``/compare?runs=A&runs=B``: 2 to ``MAX_COMPARED`` runs side by side (flags, metrics, charts, source diffs)."""
    refs = [r for value in request.query_params.getlist("runs") for r in value.split(",") if r]
    if len(refs) < 2:
        return page(
            request,
            "error.html.j2",
            400,
            title="Choose runs",
            message="Select 2 or more runs in the runs table to compare them (?runs=ID&runs=ID).",
        )
    if len(refs) > MAX_COMPARED:
        return page(
            request,
            "error.html.j2",
            400,
            title="Too many runs",
            message=f"{len(refs)} runs selected; compare at most {MAX_COMPARED} at once.",
        )
    dirs = []
    for ref in refs:
        run_dir = find_run(request, ref)
        if run_dir is None:
            return _no_run(request, ref)
        dirs.append(run_dir)
    return page(request, "compare.html.j2", **compare_context(dirs))


async def tuning_page(request: Request) -> Response:
    """``/tuning/{tuning_id}``: a tuning run's trials, the best one marked by the chosen metric's direction."""
    tuning_id = request.path_params["tuning_id"]
    store = _store(request)
    trials = _table(request).tuning_trials(tuning_id) if store.path.is_dir() else []
    if not trials:
        return not_found(request, f"No tuning run {tuning_id!r} in {store.path}.")
    keys = list(dict.fromkeys(k for t in trials for k, v in t.items() if v is not None))
    metric_choices = [k for k in keys if k.startswith(("metric_", "eval_"))]
    metric = request.query_params.get("metric")
    mode = request.query_params.get("mode")
    if metric not in metric_choices:  # the default metric, as `layerflow tune` picks it
        found = default_metric(metric_choices)
        metric = found[0] if found else (metric_choices[0] if metric_choices else None)
    if mode not in ("min", "max"):
        mode = metric_mode(metric) if metric else "max"
    scored = [t for t in trials if isinstance(t.get(metric), (int, float)) and t[metric] == t[metric]] if metric else []
    best = (min if mode == "min" else max)(scored, key=lambda t: t[metric])["id"] if scored and metric else None
    flag_columns = [k for k in keys if k.startswith("flag_") and len({repr(t.get(k)) for t in trials}) > 1]
    columns = [
        "id",
        "status",
        *([TRIAL_COLUMN] if TRIAL_COLUMN in keys else []),
        "epochs",
        *[k for k in keys if k.startswith(("flag_", "metric_", "eval_"))],
    ]
    return page(
        request,
        "tuning.html.j2",
        tuning_id=tuning_id,
        rows=trials,
        columns=columns,
        metric=metric,
        mode=mode,
        best=best,
        flag_columns=flag_columns,
        metric_choices=metric_choices,
        **tuning_charts(store.path, tuning_id),
    )


async def health(request: Request) -> Response:
    """``/health``: open without the token; says which runs folder this UI shows."""
    return JSONResponse({"status": "ok", "runs_dir": str(_store(request).path), "pid": os.getpid()})


async def on_404(request: Request, exc: Exception) -> Response:
    """Any unknown address: the 404 page."""
    return not_found(request, f"No page {request.url.path!r}.")


def compare_context(dirs: list[Path]) -> dict[str, Any]:
    """What the comparison page shows of runs ``dirs`` (the first is the base the others are diffed against)."""
    records = [read_record(d) for d in dirs]
    series = [run_files.curves(run_files.read_new_metric_lines(d / f.METRICS_FILE, 0)[0]) for d in dirs]
    names = list(dict.fromkeys(k for r in records for k in (r.get("flags") or {})))
    flag_rows = [(n, [(r.get("flags") or {}).get(n) for r in records]) for n in names]
    differing = [(n, values) for n, values in flag_rows if len({repr(v) for v in values}) > 1]
    value_rows = []
    for key, prefix in (("metrics", "metric"), ("evaluation", "eval")):
        keys = list(dict.fromkeys(k for r in records for k in (r.get(key) or {})))
        value_rows += [(f"{prefix} {k}", [(r.get(key) or {}).get(k) for r in records]) for k in keys]
    base = dirs[0]
    base_files = set(run_files.source_files(base))
    diffs = []
    for other, record in zip(dirs[1:], records[1:]):
        other_files = set(run_files.source_files(other))
        for name in sorted(base_files | other_files):
            a = _source_or_empty(base, name) if name in base_files else ""
            b = _source_or_empty(other, name) if name in other_files else ""
            if a != b:
                lines = difflib.unified_diff(
                    a.splitlines(), b.splitlines(), f"{base.name}/{name}", f"{other.name}/{name}", lineterm="", n=3
                )
                diffs.append(
                    {"name": name, "other": record["id"], "lines": [(_diff_class(line), line) for line in lines]}
                )
    runs = [{"label": r["id"][-4:], "data": data} for r, data in zip(records, series)]
    return {
        "records": records,
        "runs": runs,
        "differing": differing,
        "flag_rows": flag_rows,
        "value_rows": value_rows,
        "diffs": diffs,
    }


ROUTES = [
    Route("/", runs_page),
    Route("/health", health),
    Route("/runs/{run}", run_page),
    Route("/runs/{run}/output", output_page),
    Route("/runs/{run}/events", events),
    Route("/runs/{run}/files/{path:path}", run_file_route),
    Route("/compare", compare_page),
    Route("/tuning/{tuning_id}", tuning_page),
    Mount("/static/shared", StaticFiles(directory=str(SHARED / "assets")), name="shared"),
    Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
]


def _token_refusal() -> Response:
    return HTMLResponse(
        "<!DOCTYPE html><title>Token needed</title><h1>401: token needed</h1><p>This layerflow UI was started "
        "with --token. Open it as <code>http://HOST:PORT/?token=YOUR_TOKEN</code> (or send "
        "<code>Authorization: Bearer YOUR_TOKEN</code>).</p>",
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def create_app(runs_dir: str | Path | None = None, token: str | None = None) -> Starlette:
    """The UI as an ASGI app over one runs folder.

    Args:
        runs_dir: the runs folder (default ``$LAYERFLOW_RUNS_DIR`` or ``./runs``); it may not exist yet.
        token: when given, every page but ``/health`` needs it (``?token=``, then a cookie, or
            ``Authorization: Bearer``), checked by ``layerflow.http_token.TokenGate``.

    Returns:
        A Starlette app of ``ROUTES``, its ``state`` holding ``store``, ``table`` and ``templates``;
        serve it with uvicorn (``layerflow.ui.serve_ui`` does).

    Example:
        >>> import uvicorn
        >>> uvicorn.run(create_app("runs"), host="127.0.0.1", port=8600)
    """
    store = RunStore(runs_dir)
    middleware = (
        [Middleware(TokenGate, token=token, open_paths=("/health",), cookie=TOKEN_COOKIE, refusal=_token_refusal)]
        if token
        else []
    )
    app = Starlette(routes=ROUTES, middleware=middleware, exception_handlers={404: on_404})
    app.state.store = store
    app.state.table = RunTable(store.path)
    app.state.templates = _templates()
    return app


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def _source_or_empty(run_dir: Path, name: str) -> str:
    try:
        return run_files.read_source(run_dir, name) or ""
    except (FileNotFoundError, run_files.UnsafePathError):
        return ""


def _highlight(name: str, text: str) -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import TextLexer, guess_lexer_for_filename
    from pygments.util import ClassNotFound

    try:
        lexer = guess_lexer_for_filename(name, text[:4096])
    except ClassNotFound:
        lexer = TextLexer()
    return highlight(text, lexer, HtmlFormatter(linenos="table", cssclass="code"))


def _diff_class(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    return {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "")
