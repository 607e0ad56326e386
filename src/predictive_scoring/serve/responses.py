"""JSON responses rendered with orjson (FastAPI's ORJSONResponse is deprecated)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

__all__ = ["OrjsonResponse"]


class OrjsonResponse(Response):
    """Renders plain dicts and lists with orjson; NaN never reaches it (inputs reject it)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
