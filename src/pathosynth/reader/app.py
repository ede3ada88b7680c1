"""The FastAPI application: server-rendered pages (Jinja2), no front-end build step.

`create_app(database_url)` migrates the database, then serves three audiences through their own
routers: admins (`/admin`, a session cookie), readers (`/r/{token}`) and trainees (`/t/{token}`),
the last two by personal links whose token is the only credential.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException

from pathosynth import __version__
from pathosynth.errors import UserError
from pathosynth.reader.db import open_database
from pathosynth.reader.studies import server_secret

log = logging.getLogger("pathosynth.reader")
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

# Sent with every response: no caching (a shared workstation must not keep a reader's cases), no
# Referer (it would carry a reader's token to another site), no framing, no content sniffing.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
}


@dataclass
class Limits:
    """Rate limits for on-demand generation, per trainee and for the whole server."""

    per_minute: int = 6
    concurrent: int = 1


@dataclass
class AppState:
    sessions: sessionmaker
    secret: str
    # (run or pool folder, options such as base_scans=...) -> case maker; injected so that this
    # package never imports torch
    load_maker: Callable[..., object] | None
    data_root: Path
    limits: Limits
    makers: dict = field(default_factory=dict)
    maker_lock: threading.Lock = field(default_factory=threading.Lock)
    generation_slots: threading.BoundedSemaphore | None = None

    def maker(self, path: str, base_scans: str | None = None):
        if self.load_maker is None:
            raise UserError("this server was started without teaching support; restart `pathosynth serve` "
                            "from an installation with the GAN engine")
        options = {"base_scans": base_scans} if base_scans else {}
        with self.maker_lock:
            if (path, base_scans) not in self.makers:
                self.makers[path, base_scans] = self.load_maker(path, **options)
            return self.makers[path, base_scans]


def create_app(database_url: str, *, load_maker: Callable[..., object] | None = None,
               data_root: str | Path | None = None, limits: Limits | None = None) -> FastAPI:
    _engine, sessions = open_database(database_url)
    with sessions() as session:
        secret = server_secret(session)
    limits = limits or Limits()
    state = AppState(sessions=sessions, secret=secret, load_maker=load_maker,
                     data_root=Path(data_root or Path.cwd()).resolve(), limits=limits,
                     generation_slots=threading.BoundedSemaphore(limits.concurrent))
    app = FastAPI(title="pathosynth reader studies", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None, debug=False)
    app.state.reader = state
    _install_headers(app)
    _install_error_pages(app)
    from pathosynth.reader import routes_admin, routes_reader, routes_teaching

    app.include_router(routes_admin.router)
    app.include_router(routes_reader.router)
    app.include_router(routes_teaching.router)
    return app


def state_of(request: Request) -> AppState:
    return request.app.state.reader


def db(request: Request) -> Iterator[Session]:
    """One database session per request (a FastAPI dependency)."""
    with state_of(request).sessions() as session:
        yield session


def page(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


def see_other(url: str) -> RedirectResponse:
    """The answer to a form post: go to `url` with a GET (so a reload does not post again)."""
    return RedirectResponse(url, status_code=303)


def message(request: Request, title: str, text: str, status_code: int) -> HTMLResponse:
    return page(request, "message.html", status_code=status_code, title=title, text=text)


def _install_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        return response


def _install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        return message(request, "That did not work", str(exc), 400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        titles = {401: "Please log in", 403: "Not allowed", 404: "Not found", 405: "Not allowed",
                  429: "Please wait"}
        text = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else "There is nothing here."
        response = message(request, titles.get(exc.status_code, "Error"), text, exc.status_code)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_form(request: Request, exc: RequestValidationError):
        return message(request, "That did not work", "The form was incomplete or malformed; go back and "
                       "fill in every field.", 422)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):
        # the trace goes to the server's log, never to the browser
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return message(request, "Something went wrong", "The server could not complete this request; "
                       "your earlier answers are saved. Try again in a moment.", 500)
