"""The one token check of layerflow's HTTP apps (``layerflow ui`` and the model server): ASGI middleware.

A leaf: it imports Starlette only (no training stack, no ``runs``), so the model server may use it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from layerflow.errors import InvalidValueError

MISSING_TOKEN = "Missing or wrong bearer token: send 'Authorization: Bearer <token>'."


def json_refusal() -> Response:
    """The 401 answer of an API: ``{"error": ...}`` naming what to send.

    Returns:
        A JSONResponse with status 401 and ``WWW-Authenticate: Bearer``.

    Example:
        >>> json_refusal().status_code
        401
    """
    return JSONResponse({"error": MISSING_TOKEN}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


class TokenGate:
    """Requires the token on every HTTP request but those to ``open_paths``.

    The token is accepted as ``Authorization: Bearer <token>`` and, when ``cookie`` names one, as
    that cookie; a browser opens the app once as ``?token=<token>``, which sets the cookie and
    redirects to the same address without the token. Tokens are compared in constant time.

    Args:
        app: the ASGI app behind the gate.
        token: the expected token (non-empty).
        open_paths: paths open without a token; each also opens the paths below it
            (``"/v2/health"`` opens ``/v2/health/live``).
        cookie: the cookie that remembers the token in a browser; None accepts the header only.
        refusal: makes the 401 answer (default: JSON, ``json_refusal``).

    Example:
        >>> app = Starlette(routes=routes, middleware=[Middleware(TokenGate, token="s3cret",
        ...                                                       open_paths=("/health",))])
    """

    def __init__(
        self,
        app: Any,
        token: str,
        open_paths: Iterable[str] = (),
        cookie: str | None = None,
        refusal: Callable[[], Response] = json_refusal,
    ):
        if not token:
            raise InvalidValueError(f"token={token!r}: the token gate needs a non-empty token string.")
        self.app, self.token, self.cookie, self.refusal = app, token.encode(), cookie, refusal
        self.open_paths = tuple(p.rstrip("/") for p in open_paths)

    def _is_open(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.open_paths)

    def _matches(self, given: str) -> bool:
        return bool(given) and secrets.compare_digest(given.encode(), self.token)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self._is_open(scope["path"]):
            return await self.app(scope, receive, send)
        request = Request(scope)
        if self.cookie is not None:
            given = request.query_params.get("token")
            if given is not None and self._matches(given):
                others = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = scope["path"] + ("?" + urlencode(others) if others else "")
                response: Response = RedirectResponse(target, status_code=303)
                response.set_cookie(self.cookie, self.token.decode(), httponly=True, samesite="strict")
                return await response(scope, receive, send)
            if self._matches(request.cookies.get(self.cookie, "")):
                return await self.app(scope, receive, send)
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer ") and self._matches(header.removeprefix("Bearer ")):
            return await self.app(scope, receive, send)
        return await self.refusal()(scope, receive, send)
