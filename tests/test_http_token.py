"""The one token gate (layerflow/http_token.py) of layerflow ui and the model server, on a real loopback server."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from layerflow.errors import InvalidValueError, LayerflowError
from layerflow.http_token import TokenGate

TOKEN = "s3cret-token"


async def hello(request):
    return PlainTextResponse(f"hello {request.url.path}")


def _serve(**gate) -> tuple[str, uvicorn.Server, threading.Thread]:
    app = Starlette(routes=[Route("/{path:path}", hello)], middleware=[Middleware(TokenGate, token=TOKEN, **gate)])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture
def serve():
    started = []

    def start(**gate) -> str:
        url, server, thread = _serve(**gate)
        started.append((server, thread))
        return url

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(10)


def test_an_api_gate_takes_the_bearer_header_only(serve):
    url = serve(open_paths=("/v2/health",))
    refused = httpx.get(f"{url}/v1/models/m")
    assert refused.status_code == 401 and "Bearer <token>" in refused.json()["error"]
    assert refused.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{url}/v1/models/m", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{url}/v1/models/m", headers={"Authorization": TOKEN}).status_code == 401  # no "Bearer "
    assert httpx.get(f"{url}/v1/models/m", headers={"Authorization": f"Bearer {TOKEN}"}).text == "hello /v1/models/m"
    assert httpx.get(f"{url}/v1/models/m?token={TOKEN}").status_code == 401  # no cookie: no token in URLs
    assert httpx.get(f"{url}/v2/health/live").status_code == 200  # an open path and those below it
    assert httpx.get(f"{url}/v2/healthz").status_code == 401


def test_a_browser_gate_sets_a_cookie_from_the_query_and_keeps_the_other_parameters(serve):
    url = serve(open_paths=("/health",), cookie="gate_cookie")
    with httpx.Client(base_url=url) as browser:
        assert browser.get("/runs").status_code == 401
        opened = browser.get(f"/runs?tab=output&token={TOKEN}")
        assert opened.status_code == 303 and opened.headers["location"] == "/runs?tab=output"
        cookie = opened.headers["set-cookie"].lower()
        assert cookie.startswith("gate_cookie=") and "httponly" in cookie and "samesite=strict" in cookie
        assert browser.get("/runs").text == "hello /runs"  # the cookie now
    assert httpx.get(f"{url}/runs", cookies={"gate_cookie": "wrong"}).status_code == 401
    assert httpx.get(f"{url}/runs?token=wrong").status_code == 401
    assert httpx.get(f"{url}/health").status_code == 200


def test_a_gate_needs_a_token():
    with pytest.raises(InvalidValueError, match="non-empty token") as caught:
        TokenGate(hello, token="")
    assert isinstance(caught.value, LayerflowError)
