"""API-key authentication, checked before the body is read so strangers cannot make us parse it."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import Literal

import orjson
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from predictive_scoring.errors import ConfigError
from predictive_scoring.serve.settings import Settings

__all__ = ["API_KEY_HEADER", "BEARER", "AuthMiddleware", "KeyChecker", "route_path"]

logger = logging.getLogger(__name__)

Role = Literal["anonymous", "client", "admin"]

# Declared on the routers for the OpenAPI "Authorize" button; the check itself is the middleware.
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey")
BEARER = HTTPBearer(auto_error=False, scheme_name="Bearer")


def route_path(scope: Scope) -> str:
    """The path the router matches: ``path`` without the ``root_path`` a proxy mounts us under.

    Access rules must be decided on this path, not the raw one, or a service run with
    ``--root-path /api`` would see ``/api/v1/score`` and find no rule for it.
    """
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def _encode(keys: Sequence[SecretStr]) -> list[bytes]:
    return [k.get_secret_value().encode() for k in keys if k.get_secret_value()]


class KeyChecker:
    """Compares a presented key with every configured key in constant time."""

    def __init__(self, settings: Settings) -> None:
        self.client_keys = _encode(settings.api_keys)
        self.admin_keys = _encode(settings.admin_keys)
        self.anonymous = settings.allow_anonymous
        if not (self.client_keys or self.admin_keys or self.anonymous):
            raise ConfigError(
                "no API key configured: set PREDICTIVE_SCORING_API_KEYS (comma-separated) "
                "and optionally PREDICTIVE_SCORING_ADMIN_KEYS, or set "
                "PREDICTIVE_SCORING_ALLOW_ANONYMOUS=true for local development only"
            )
        if self.anonymous:
            logger.warning("authentication is OFF (allow_anonymous); never expose this service")

    @staticmethod
    def _matches(presented: bytes, keys: list[bytes]) -> bool:
        found = False
        for key in keys:  # no early exit: every key is compared
            found |= hmac.compare_digest(presented, key)
        return found

    def role(self, presented: bytes | None) -> Role | None:
        """The presented key's role, or None when it is missing or wrong."""
        if self.anonymous:
            return "anonymous"
        if not presented:
            return None
        is_admin = self._matches(presented, self.admin_keys)
        is_client = self._matches(presented, self.client_keys)
        if is_admin:
            return "admin"
        return "client" if is_client else None


def _presented_key(scope: Scope) -> bytes | None:
    key: bytes | None = None
    for name, value in scope.get("headers", ()):
        if name == b"x-api-key" and value.strip():
            key = value.strip()
        elif name == b"authorization" and key is None:
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer":
                key = token.strip()
    return key


class AuthMiddleware:
    """401 without a valid key under /v1 (and /metrics unless public); 403 for admin routes."""

    def __init__(self, app: ASGIApp, checker: KeyChecker, *, metrics_public: bool) -> None:
        self.app = app
        self.checker = checker
        self.metrics_public = metrics_public

    def _needs(self, path: str) -> Literal["none", "client", "admin"]:
        if path.startswith("/v1/admin"):
            return "admin"
        if path.startswith("/v1/") or (path == "/metrics" and not self.metrics_public):
            return "client"
        return "none"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = self._needs(route_path(scope))
        if needed != "none":
            role = self.checker.role(_presented_key(scope))
            if role is None:
                await _refuse(
                    send,
                    401,
                    "missing or invalid API key: send it in the X-API-Key header or as "
                    "'Authorization: Bearer <key>'",
                )
                return
            if needed == "admin" and role == "client":
                await _refuse(send, 403, "this endpoint needs an admin key")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, msg: str) -> None:
    body = orjson.dumps(
        {"detail": [{"loc": ["header", "X-API-Key"], "msg": msg, "type": "unauthorized"}]}
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="predictive_scoring"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
