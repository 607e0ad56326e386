"""/docs (Swagger UI) and /redoc from files this service serves itself: they render offline.

FastAPI's own pages load Swagger UI, ReDoc and a font from CDNs, and stay blank on a machine
without internet. The assets come from the installed ``fastapi-offline`` package (Swagger UI 5,
which renders the OpenAPI 3.1 document FastAPI writes, and ReDoc 2), mounted under
:data:`ASSETS`; the pages are FastAPI's, pointed at them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

from predictive_scoring.errors import ConfigError

__all__ = ["ASSETS", "DOC_PATHS", "install_docs"]

ASSETS = "/docs-assets"
DOC_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def _asset_dir() -> Path:
    folder = Path(str(files("fastapi_offline") / "static"))
    missing = [name for name in _FILES if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            f"the API pages' assets {missing} are missing from {folder}; reinstall the "
            "project (pip install -e .) to get fastapi-offline"
        )
    return folder


def install_docs(app: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """Add /docs, its OAuth2 redirect and /redoc to ``app`` (made with ``docs_url=None`` and
    ``redoc_url=None``), with their scripts, styles and icon served under :data:`ASSETS`."""
    app.mount(ASSETS, StaticFiles(directory=_asset_dir()), name="docs-assets")
    title = app.title

    @app.get(DOC_PATHS[0], include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=f"{root}{DOC_PATHS[1]}",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            # no call to the public validator.swagger.io from a reader's browser
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(DOC_PATHS[1], include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(DOC_PATHS[2], include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
