"""Who is asking: the admin behind a session cookie, or the reader behind a personal link."""

from __future__ import annotations

from datetime import timedelta

from fastapi import HTTPException, Request
from sqlalchemy import delete
from sqlalchemy.orm import Session

from pathosynth.reader.app import state_of
from pathosynth.reader.security import csrf_ok, csrf_token, new_token, verify_password
from pathosynth.reader.studies import aware, now, reader_by_token
from pathosynth.reader.tables import Admin, AdminSession, Reader
from pathosynth.reader.throttle import LoginThrottle, attempt_succeeded, start_attempt

ADMIN_COOKIE = "ps_admin"
LOGIN_COOKIE = "ps_login"  # binds the login form's CSRF token before anyone is logged in
SESSION_LIFETIME = timedelta(hours=12)


class LoginRequired(HTTPException):
    def __init__(self):
        super().__init__(status_code=303, headers={"Location": "/admin/login"})


def admin_session(request: Request, session: Session) -> AdminSession | None:
    token = request.cookies.get(ADMIN_COOKIE, "")
    if not token or len(token) > 64:
        return None
    row = session.get(AdminSession, token)
    if row is None or aware(row.expires_at) < now():
        return None
    return row


def require_admin(request: Request, session: Session) -> Admin:
    """The logged-in admin; a GET without a session is sent to the login page, anything else refused."""
    row = admin_session(request, session)
    if row is None:
        if request.method == "GET":
            raise LoginRequired()
        raise HTTPException(status_code=403, detail="Your session has ended; log in again.")
    return session.get(Admin, row.admin_id)


def admin_csrf(request: Request, session: Session) -> str:
    row = admin_session(request, session)
    return csrf_token(state_of(request).secret, f"admin:{row.token}") if row else ""


def check_admin_csrf(request: Request, session: Session, presented: str) -> Admin:
    admin = require_admin(request, session)
    binding = f"admin:{request.cookies.get(ADMIN_COOKIE, '')}"
    if not csrf_ok(state_of(request).secret, binding, presented):
        raise HTTPException(status_code=403, detail="This form has expired; reload the page and submit it again.")
    return admin


def login_binding(request: Request) -> str:
    return request.cookies.get(LOGIN_COOKIE, "")


def client_address(request: Request) -> str:
    # behind a reverse proxy on this machine, uvicorn puts the forwarded client's address here
    return request.client.host if request.client else "unknown"


def log_in(session: Session, username: str, password: str, *, address: str, throttle: LoginThrottle) -> str | None:
    """A new session token for a correct user name and password, None otherwise; TooManyLogins
    (429) when the name or address has had too many failures lately, whatever the password."""
    attempt = start_attempt(session, throttle, username, address)
    admin = session.query(Admin).filter(Admin.username == username).one_or_none()
    # verify against a fixed hash when the name is unknown, so timing does not reveal names
    stored = admin.password_hash if admin else _UNKNOWN_USER_HASH
    if not verify_password(password, stored) or admin is None:
        return None
    attempt_succeeded(session, attempt)
    session.execute(delete(AdminSession).where(AdminSession.expires_at < now()))
    token = new_token()
    session.add(AdminSession(token=token, admin_id=admin.id, expires_at=now() + SESSION_LIFETIME))
    session.commit()
    return token


def log_out(session: Session, token: str) -> None:
    session.execute(delete(AdminSession).where(AdminSession.token == token))
    session.commit()


def require_reader(session: Session, token: str, kind: str) -> Reader:
    """The reader whose personal link this is, for a study of `kind`; an unknown token is a 404 that
    says nothing about whether any such study exists."""
    reader = reader_by_token(session, token)
    if reader is None or reader.study.kind not in _KINDS[kind]:
        raise HTTPException(status_code=404)
    return reader


def reader_csrf(request: Request, reader: Reader) -> str:
    return csrf_token(state_of(request).secret, f"reader:{reader.token}")


def check_reader_csrf(request: Request, reader: Reader, presented: str) -> None:
    if not csrf_ok(state_of(request).secret, f"reader:{reader.token}", presented):
        raise HTTPException(status_code=403, detail="This form has expired; reload the page and answer again.")


_KINDS = {"reader": ("vtt", "survey"), "trainee": ("teaching",)}
_UNKNOWN_USER_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
