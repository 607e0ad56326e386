"""API keys: which roles a presented key has, compared in constant time.

The check itself is a FastAPI dependency (:mod:`predictive_scoring.serve.deps`): it runs before
a route reads the body, so strangers cannot make us parse it.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import Literal

from pydantic import SecretStr
from starlette.types import Scope

from predictive_scoring.errors import ConfigError
from predictive_scoring.serve.settings import Settings

__all__ = ["SECURITY_SCHEMES", "KeyChecker", "Role", "presented_key", "route_path"]

logger = logging.getLogger(__name__)

# What a key may do: a client scores; an outcome key also posts outcomes; an admin key does
# both and reloads the model. Anonymous mode (local development) may do everything.
Role = Literal["anonymous", "client", "outcomes", "admin"]

# The key schemes as OpenAPI declares them (the "Authorize" button of /docs).
SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer"},
}


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
        self.outcome_keys = _encode(settings.outcome_keys)
        self.anonymous = settings.allow_anonymous
        if not (self.client_keys or self.admin_keys or self.outcome_keys or self.anonymous):
            raise ConfigError(
                "no API key configured: set PREDICTIVE_SCORING_API_KEYS (comma-separated) "
                "and optionally PREDICTIVE_SCORING_ADMIN_KEYS and "
                "PREDICTIVE_SCORING_OUTCOME_KEYS, or set "
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
        """The presented key's role (the widest, when a key is in several lists), or None when
        it is missing or wrong."""
        if self.anonymous:
            return "anonymous"
        if not presented:
            return None
        is_admin = self._matches(presented, self.admin_keys)
        is_outcomes = self._matches(presented, self.outcome_keys)
        is_client = self._matches(presented, self.client_keys)
        if is_admin:
            return "admin"
        if is_outcomes:
            return "outcomes"
        return "client" if is_client else None


def presented_key(api_key: str | None, authorization: str | None) -> bytes | None:
    """The key a request presents: ``X-API-Key``, else an ``Authorization: Bearer`` token."""
    if api_key and api_key.strip():
        return api_key.strip().encode()
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip().encode()
    return None
