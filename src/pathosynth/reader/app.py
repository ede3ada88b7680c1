"""The FastAPI application: server-rendered pages (Jinja2), no front-end build step.

`create_app(database_url)` migrates the database, then serves three audiences through their own
routers: admins (`/admin`, a session cookie), readers (`/r/{token}`) and trainees (`/t/{token}`),
the last two by personal links whose token is the only credential; `/` tells a newcomer which is
theirs. The few scripts and the style sheet are files of this package (`/static`): the Content
Security Policy allows no inline script or style.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException

from pathosynth import __version__
from pathosynth.errors import UserError
from pathosynth.reader.db import open_database
from pathosynth.reader.studies import server_secret
from pathosynth.reader.throttle import LoginThrottle

log = logging.getLogger("pathosynth.reader")
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
STATIC = Path(__file__).parent / "static"

# Sent with every response: no caching (a shared workstation must not keep a reader's cases), no
# Referer (it would carry a reader's token to another site), no framing, no content sniffing.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # scripts and styles only from the app's own files: injected markup cannot run or restyle anything
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
}
NUL_MESSAGE = ("The request held a NUL character (\\x00), which no field, link or cookie here may contain; "
               "remove it and send it again.")


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
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)
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
               data_root: str | Path | None = None, limits: Limits | None = None,
               login_throttle: LoginThrottle | None = None) -> FastAPI:
    _engine, sessions = open_database(database_url)
    with sessions() as session:
        secret = server_secret(session)
    limits = limits or Limits()
    state = AppState(sessions=sessions, secret=secret, load_maker=load_maker,
                     data_root=Path(data_root or Path.cwd()).resolve(), limits=limits,
                     login_throttle=login_throttle or LoginThrottle(),
                     generation_slots=threading.BoundedSemaphore(limits.concurrent))
    app = FastAPI(title="pathosynth reader studies", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None, debug=False)
    app.state.reader = state
    # the NUL guard first, so that the headers middleware (added after it, so outside it) covers its 400
    app.add_middleware(RefuseNulBytes)
    _install_headers(app)
    _install_error_pages(app)
    from pathosynth.reader import routes_admin, routes_home, routes_reader, routes_teaching

    app.include_router(routes_home.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_reader.router)
    app.include_router(routes_teaching.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
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


class RefuseNulBytes:
    """Answers 400 to a request with a NUL byte in its path, query, cookies or form fields.

    PostgreSQL cannot store NUL in text and the operating system refuses it in file names, so such
    input would reach a query or a path and end in a 500; this one guard covers every route. It reads
    a form body whole and hands the same bytes on (the app's forms are small, with no file upload).
    """

    FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        content_type = request.headers.get("content-type", "").lower()
        fields = b""
        if content_type.startswith(self.FORM_TYPES):
            body = await _whole_body(receive)
            receive = _replay(body, receive)
            # an urlencoded body carries NUL as %00, a multipart body raw
            fields = unquote_to_bytes(body) if content_type.startswith(self.FORM_TYPES[0]) else body
        if b"\x00" in fields or _link_or_cookie_holds_nul(request):
            response = message(request, "That did not work", NUL_MESSAGE, 400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _whole_body(receive) -> bytes:
    chunks = []
    while True:
        event = await receive()
        chunks.append(event.get("body", b""))
        if event["type"] != "http.request" or not event.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    replayed = False

    async def replay():
        nonlocal replayed
        if replayed:
            return await receive()  # after the body: a disconnect, as the app expects
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _link_or_cookie_holds_nul(request: Request) -> bool:
    query = unquote_to_bytes(request.scope.get("query_string", b""))
    return (b"\x00" in query or "\x00" in request.url.path
            or any("\x00" in name + value for name, value in request.cookies.items()))


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
