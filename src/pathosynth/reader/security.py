"""Passwords, tokens and CSRF: the few primitives every route relies on.

- Admin passwords: scrypt (memory-hard, in the standard library) with a per-password salt.
- Reader links and admin sessions: 256-bit random tokens (`secrets`), compared in constant time.
- CSRF: every form carries `csrf = HMAC(server secret, binding)`; the binding is the admin's
  session token, the anonymous login cookie, or the reader's token. A cross-site page cannot
  read any of them, so it cannot forge the field.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRYPT = {"n": 2**14, "r": 8, "p": 1}
TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    encode = base64.b64encode
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${encode(salt).decode()}${encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                            dklen=len(expected))
    return hmac.compare_digest(actual, expected)


def csrf_token(secret: str, binding: str) -> str:
    return hmac.new(secret.encode(), f"csrf:{binding}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str, binding: str | None, presented: str | None) -> bool:
    if not binding or not presented:
        return False
    return hmac.compare_digest(csrf_token(secret, binding), presented)

