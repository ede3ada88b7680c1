"""Admin login throttling, stored in the database: after 5 failed logins for a name (or 20 from one
address) within 15 minutes, every further attempt is refused with 429, even with the right password,
until the window has passed; it holds across a restart and against simultaneous attempts. Time is a
fake clock handed to the app, so nothing sleeps."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from pathosynth.reader.auth import ADMIN_COOKIE
from pathosynth.reader.db import open_database
from pathosynth.reader.throttle import LoginThrottle, TooManyLogins, start_attempt
from tests.reader.conftest import ADMIN, PASSWORD, csrf_of


class Clock:
    def __init__(self):
        self.moment = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.moment

    def set(self, seconds: float) -> None:
        """Seconds after the start."""
        self.moment = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc) + timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def throttled(app_factory, clock):
    with TestClient(app_factory(login_throttle=LoginThrottle(clock=clock))) as client:
        yield client


def attempt(client: TestClient, password: str, username: str = ADMIN):
    page = client.get("/admin/login")
    return client.post("/admin/login", data={"username": username, "password": password, "csrf": csrf_of(page.text)},
                       follow_redirects=False)


def test_thirty_wrong_passwords_then_the_right_one_does_not_log_in(throttled, clock):
    codes = []
    for n in range(30):  # one every 20 s: failures at 0, 20, 40, 60 and 80 s, then refusals
        clock.set(20 * n)
        codes.append(attempt(throttled, f"wrong {n}").status_code)
    assert codes == [401] * 5 + [429] * 25

    clock.set(600)
    refused = attempt(throttled, PASSWORD)
    assert refused.status_code == 429 and ADMIN_COOKIE not in throttled.cookies
    assert "Too many failed logins for this user name or from this address; try again in 5 minutes." in refused.text
    # the lock ends when the first of the five failures leaves the 15-minute window (0 s + 900 s); the
    # refused attempts did not prolong it
    assert refused.headers["retry-after"] == "300"
    assert throttled.get("/admin", follow_redirects=False).headers["location"] == "/admin/login"
    clock.set(899)
    assert attempt(throttled, PASSWORD).status_code == 429
    clock.set(901)
    assert attempt(throttled, PASSWORD).status_code == 303 and ADMIN_COOKIE in throttled.cookies


def test_the_lock_is_kept_in_the_database_across_a_restart(app_factory, clock):
    with TestClient(app_factory(login_throttle=LoginThrottle(clock=clock))) as first:
        assert [attempt(first, "wrong").status_code for _ in range(5)] == [401] * 5
    with TestClient(app_factory(login_throttle=LoginThrottle(clock=clock))) as restarted:
        assert attempt(restarted, PASSWORD).status_code == 429


def test_many_names_from_one_address_are_throttled_too(throttled):
    names = [f"guess{n}" for n in range(19)] + ["x" * 300]  # a name longer than any column is cut, not an error
    assert {attempt(throttled, "wrong", username=name).status_code for name in names} == {401}
    assert attempt(throttled, PASSWORD).status_code == 429


def test_a_successful_login_clears_the_names_failures(throttled):
    assert [attempt(throttled, "wrong").status_code for _ in range(4)] == [401] * 4
    assert attempt(throttled, PASSWORD).status_code == 303
    throttled.cookies.clear()
    assert [attempt(throttled, "wrong").status_code for _ in range(6)] == [401] * 5 + [429]


def test_simultaneous_attempts_get_no_more_than_five_passwords_checked(database_url, clock):
    """Each attempt is stored before it is counted: checking first would let all of them through."""
    _engine, sessions = open_database(database_url)
    throttle, start = LoginThrottle(clock=clock), threading.Barrier(16)
    admitted = []

    def try_once():
        start.wait()
        with sessions() as session:
            try:
                start_attempt(session, throttle, ADMIN, "192.0.2.1")
                admitted.append(True)
            except TooManyLogins:
                pass

    threads = [threading.Thread(target=try_once) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _engine.dispose()
    assert len(admitted) <= 5
