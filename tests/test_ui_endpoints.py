"""layerflow ui's endpoints are module-level functions of the request: each one called alone, without a server."""

from __future__ import annotations

import asyncio
import json

from starlette.requests import Request

from layerflow.ui import app as ui_app


def _request(app, path: str, query: str = "", **path_params) -> Request:
    return Request(
        {
            "type": "http",
            "app": app,
            "method": "GET",
            "path": path,
            "root_path": "",
            "scheme": "http",
            "server": ("127.0.0.1", 80),
            "headers": [],
            "query_string": query.encode(),
            "path_params": path_params,
        }
    )


def test_each_endpoint_answers_alone_from_the_apps_state(tmp_path):
    runs = tmp_path / "runs"
    app = ui_app.create_app(runs)
    assert all(hasattr(app.state, name) for name in ("store", "table", "templates"))

    health = asyncio.run(ui_app.health(_request(app, "/health")))
    assert json.loads(health.body)["runs_dir"] == str(app.state.store.path)
    assert app.state.store.path.name == "runs"

    missing = asyncio.run(ui_app.run_page(_request(app, "/runs/nope", run="nope")))
    assert missing.status_code == 404 and b"No run &#39;nope&#39;" in missing.body

    empty = asyncio.run(ui_app.runs_page(_request(app, "/")))  # no runs folder yet: the empty page
    assert empty.status_code == 200 and empty.template.name == "empty.html.j2"

    few = asyncio.run(ui_app.compare_page(_request(app, "/compare", "runs=a")))
    assert few.status_code == 400 and few.context["title"] == "Choose runs"


def test_find_run_takes_run_references_never_paths(tmp_path):
    runs = tmp_path / "runs"
    (runs / "20260101T000000-000000-0a1b").mkdir(parents=True)
    app = ui_app.create_app(runs)
    request = _request(app, "/")
    assert ui_app.find_run(request, "20260101T000000-000000-0a1b") == runs / "20260101T000000-000000-0a1b"
    for ref in ("../runs", "/etc", "20260101T000000-000000-ffff"):
        assert ui_app.find_run(request, ref) is None


def test_the_routes_are_the_module_level_endpoints():
    endpoints = {route.path: route.endpoint for route in ui_app.ROUTES if hasattr(route, "endpoint")}
    assert endpoints["/"] is ui_app.runs_page and endpoints["/tuning/{tuning_id}"] is ui_app.tuning_page
    assert all(callable(e) and e.__module__ == ui_app.__name__ for e in endpoints.values())
