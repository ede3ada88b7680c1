"""Admin login throttling, kept in the database rather than in memory: it holds across restarts, and
for every worker and server that shares one PostgreSQL database.

After `per_name` failed logins for one user name, or `per_address` from one client address, within
`window`, further attempts are refused (HTTP 429) before the password is checked, so the right
password does not help a guesser either, until enough of those failures have left the window.

An attempt is written *before* its password is checked, then counted with the others: however many
arrive at once, each sees at least every attempt committed before it, so no more than `per_name`
wrong passwords per name get checked in a window. A refused attempt is removed again, so hammering a
locked name does not prolong its lock; a successful login clears its name's failures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import HTTPException
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pathosynth.reader.studies import aware, now
from pathosynth.reader.tables import LoginAttempt

NAME_LENGTH = LoginAttempt.username.property.columns[0].type.length
ADDRESS_LENGTH = LoginAttempt.address.property.columns[0].type.length


@dataclass
class LoginThrottle:
    per_name: int = 5
    # higher than per name: several people may share an address (a clinic's NAT, a reverse proxy)
    per_address: int = 20
    window: timedelta = timedelta(minutes=15)
    clock: Callable[[], datetime] = now  # tests move it forward instead of sleeping


class TooManyLogins(HTTPException):
    def __init__(self, wait: timedelta):
        seconds = max(1, math.ceil(wait.total_seconds()))
        minutes = math.ceil(seconds / 60)
        super().__init__(status_code=429, headers={"Retry-After": str(seconds)},
                         detail=f"Too many failed logins for this user name or from this address; try again in "
                                f"{minutes} minute{'s' if minutes != 1 else ''}.")


def start_attempt(session: Session, throttle: LoginThrottle, username: str, address: str) -> LoginAttempt:
    """Record a login attempt before its password is checked; TooManyLogins when the name or the
    address has used up its failures in the window."""
    moment = throttle.clock()
    session.execute(delete(LoginAttempt).where(LoginAttempt.attempted_at <= moment - throttle.window))
    attempt = LoginAttempt(username=username[:NAME_LENGTH], address=address[:ADDRESS_LENGTH], attempted_at=moment)
    session.add(attempt)
    session.commit()
    free_at = _locked_until(session, throttle, attempt, moment)
    if free_at is not None:
        session.delete(attempt)
        session.commit()
        raise TooManyLogins(free_at - moment)
    return attempt


def attempt_succeeded(session: Session, attempt: LoginAttempt) -> None:
    session.execute(delete(LoginAttempt).where(LoginAttempt.username == attempt.username))
    session.commit()


def _locked_until(session: Session, throttle: LoginThrottle, attempt: LoginAttempt,
                  moment: datetime) -> datetime | None:
    limits = ((LoginAttempt.username == attempt.username, throttle.per_name),
              (LoginAttempt.address == attempt.address, throttle.per_address))
    ends = [_lock_end(session, throttle, matches, limit, attempt, moment) for matches, limit in limits]
    return max((end for end in ends if end is not None), default=None)


def _lock_end(session: Session, throttle: LoginThrottle, matches, limit: int, attempt: LoginAttempt,
              moment: datetime) -> datetime | None:
    """When fewer than `limit` earlier attempts that `matches` will be left in the window; None
    when there are fewer already."""
    recent = session.scalars(
        select(LoginAttempt.attempted_at)
        .where(matches, LoginAttempt.id != attempt.id, LoginAttempt.attempted_at > moment - throttle.window)
        .order_by(LoginAttempt.attempted_at.desc()).limit(limit)).all()
    if len(recent) < limit:
        return None
    return aware(recent[-1]) + throttle.window
