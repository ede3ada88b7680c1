"""Security: every route tried by every role with no unexpected success; CSRF on every
state-changing request; hashed passwords; unguessable links; no stack traces to the client; a NUL
byte anywhere in a request is one sentence (400); no inline script or style, so the Content
Security Policy can forbid them."""

from __future__ import annotations

import base64
import hashlib
import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from pathosynth import reader as reader_package
from pathosynth.reader.app import NUL_MESSAGE, Limits
from pathosynth.reader.db import open_database
from pathosynth.reader.security import csrf_token
from pathosynth.reader.tables import Admin, Reader
from pathosynth.reader.teaching_sources import PoolMaker
from tests.reader.conftest import ADMIN, PASSWORD, admin_csrf, csrf_of, invite, log_in, make_vtt

UNKNOWN_TOKEN = "x" * 43
ROLES = ("anonymous", "reader", "trainee", "admin")

# (method, path) -> the roles for which it may succeed; every route of the app must be listed
ALLOWED = {
    ("GET", "/"): set(ROLES),  # the landing page: where the printed address leads
    ("GET", "/admin/login"): set(ROLES),
    ("POST", "/admin/login"): set(),  # only with the right password, which no role here sends
    ("POST", "/admin/logout"): {"admin"},
    ("GET", "/admin"): {"admin"},
    ("GET", "/admin/studies/new"): {"admin"},
    ("POST", "/admin/studies/vtt"): {"admin"},
    ("POST", "/admin/studies/survey"): {"admin"},
    ("POST", "/admin/studies/teaching"): {"admin"},
    ("GET", "/admin/studies/{study_id}"): {"admin"},
    ("POST", "/admin/studies/{study_id}/readers"): {"admin"},
    ("POST", "/admin/studies/{study_id}/open"): {"admin"},
    ("GET", "/admin/studies/{study_id}/export.csv"): {"admin"},
    ("GET", "/admin/studies/{study_id}/export.json"): {"admin"},
    ("GET", "/admin/studies/{study_id}/questionnaire.csv"): {"admin"},
    ("GET", "/admin/studies/{study_id}/results"): {"admin"},
    ("GET", "/admin/studies/{study_id}/cases/{key}"): {"admin"},
    ("GET", "/r/{token}"): {"reader"},
    ("GET", "/r/{token}/case/{number}"): {"reader"},
    ("GET", "/r/{token}/image/{number}"): {"reader"},
    ("POST", "/r/{token}/answer"): {"reader"},
    ("GET", "/r/{token}/survey"): {"reader"},
    ("POST", "/r/{token}/survey"): {"reader"},
    ("GET", "/r/{token}/done"): {"reader"},
    ("GET", "/t/{token}"): {"trainee"},
    ("POST", "/t/{token}/request"): {"trainee"},
    ("POST", "/t/{token}/quiz"): {"trainee"},
    ("GET", "/t/{token}/case/{case_id}"): {"trainee"},
    ("GET", "/t/{token}/case/{case_id}/image"): {"trainee"},
    ("POST", "/t/{token}/case/{case_id}/answer"): {"trainee"},
}


@pytest.fixture
def world(app_factory):
    """An admin, a Visual Turing Test with a questionnaire and a reader, a teaching session with a
    trainee who has one case: what each role may reach."""
    app = app_factory(load_maker=PoolMaker, limits=Limits(per_minute=100))
    with TestClient(app) as admin:
        log_in(admin)
        vtt = make_vtt(admin, survey=True, counts="tumour=1")
        (reader_link,) = invite(admin, vtt, "Dr A")
        teaching = admin.post("/admin/studies/teaching", data={"csrf": admin_csrf(admin), "name": "T",
                                                               "source": "synthetic"}, follow_redirects=False)
        teaching_id = int(teaching.headers["location"].rsplit("/", 1)[1])
        (trainee_link,) = invite(admin, teaching_id, "Trainee")
        trainee_page = admin.get(trainee_link).text
        made = admin.post(f"{trainee_link}/request", data={"csrf": csrf_of(trainee_page), "label": "tumour"},
                          follow_redirects=False)
        case_id = int(made.headers["location"].rsplit("/", 1)[1])
        admin.cookies.clear()
        log_in(admin)
        yield {"app": app, "admin": admin, "study_id": vtt, "reader": reader_link.rsplit("/", 1)[1],
               "trainee": trainee_link.rsplit("/", 1)[1], "case_id": case_id, "teaching_id": teaching_id}


def request_as(world: dict, role: str, method: str, path: str):
    client = world["admin"] if role == "admin" else TestClient(world["app"])
    token = {"reader": world["reader"], "trainee": world["trainee"]}.get(role, UNKNOWN_TOKEN)
    url = (path.replace("{token}", token).replace("{study_id}", str(world["study_id"]))
           .replace("{number}", "1").replace("{case_id}", str(world["case_id"])).replace("{key}", "case-1"))
    secret = world["app"].state.reader.secret
    csrf = admin_csrf(client) if role == "admin" else csrf_token(secret, f"reader:{token}")
    form = {"csrf": csrf, "number": "1", "origin": "real", "confidence": "3", "label": "tumour", "choice": "tumour",
            "names": "Someone", "is_open": "1", "name": "x"}
    if method == "GET":
        return client.get(url, follow_redirects=False)
    return client.post(url, data=form, follow_redirects=False)


def succeeded(response) -> bool:
    if response.status_code == 303:
        return not response.headers["location"].startswith("/admin/login")
    return 200 <= response.status_code < 300


def route_modules() -> list:
    """Every `routes_*` module of the app, so that a new one cannot escape the classification."""
    return [importlib.import_module(f"pathosynth.reader.{info.name}")
            for info in pkgutil.iter_modules(reader_package.__path__) if info.name.startswith("routes_")]


def test_every_route_is_classified():
    routes = {(method, route.path) for module in route_modules()
              for route in module.router.routes if isinstance(route, APIRoute) for method in route.methods}
    assert routes == set(ALLOWED), "classify the new or removed routes in ALLOWED: " + repr(routes ^ set(ALLOWED))


def test_no_role_succeeds_where_it_is_not_allowed(world):
    unexpected, refused = [], []
    # logging out ends the admin's session, so it is tried last
    for (method, path), allowed in sorted(ALLOWED.items(), key=lambda item: item[0][1] == "/admin/logout"):
        for role in ROLES:
            response = request_as(world, role, method, path)
            assert response.status_code < 500, (role, method, path, response.text)
            if succeeded(response) and role not in allowed:
                unexpected.append((role, method, path, response.status_code))
            if role in allowed and response.status_code in (401, 403, 404):
                refused.append((role, method, path, response.status_code))
    assert unexpected == []
    assert refused == []


def test_a_reader_sees_only_their_own_study(world):
    admin = world["admin"]
    other = make_vtt(admin, counts="healthy=1", name="Other study")
    (other_link,) = invite(admin, other, "Dr B")
    # Dr B's two cases are healthy-only images from the other study; Dr A's token reaches none of them
    own = {TestClient(world["app"]).get(f"{other_link}/image/{n}").content for n in (1, 2)}
    mine = {TestClient(world["app"]).get(f"/r/{world['reader']}/image/{n}").content for n in (1, 2)}
    assert len(own) == len(mine) == 2 and own.isdisjoint(mine)
    assert TestClient(world["app"]).get(f"/r/{world['reader']}/image/3").status_code == 404
    # a trainee's case id is not reachable with another trainee's token
    (second_trainee,) = invite(admin, world["teaching_id"], "Trainee 2")
    assert TestClient(world["app"]).get(f"{second_trainee}/case/{world['case_id']}").status_code == 404


def test_state_changing_requests_need_the_csrf_field(world):
    admin, reader = world["admin"], world["reader"]
    refused = admin.post(f"/admin/studies/{world['study_id']}/readers", data={"csrf": "forged", "names": "Mallory"})
    assert refused.status_code == 403
    assert "Mallory" not in admin.get(f"/admin/studies/{world['study_id']}").text
    # another reader's token cannot sign for this one
    wrong = csrf_token(world["app"].state.reader.secret, f"reader:{world['trainee']}")
    answer = TestClient(world["app"]).post(f"/r/{reader}/answer", data={"csrf": wrong, "number": "1",
                                                                          "origin": "real", "confidence": "3"})
    assert answer.status_code == 403
    login = TestClient(world["app"]).post("/admin/login", data={"username": ADMIN, "password": PASSWORD})
    assert login.status_code == 403  # a login form posted from elsewhere has no CSRF field


def test_passwords_are_stored_as_salted_scrypt_hashes(world, database_url):
    _engine, sessions = open_database(database_url)
    with sessions() as session:
        stored = session.query(Admin).filter(Admin.username == ADMIN).one().password_hash
        tokens = [r.token for r in session.query(Reader)]
    _engine.dispose()
    scheme, n, r, p, salt, digest = stored.split("$")
    assert scheme == "scrypt" and PASSWORD not in stored
    expected = hashlib.scrypt(PASSWORD.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    assert base64.b64decode(digest) == expected
    # personal links: 256 random bits each, URL-safe, all different
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", t) for t in tokens) and len(set(tokens)) == len(tokens)


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(world):
    client = TestClient(world["app"])
    page = client.get("/admin/login")
    wrong_user = client.post("/admin/login", data={"username": "nobody", "password": PASSWORD,
                                                   "csrf": csrf_of(page.text)})
    wrong_password = client.post("/admin/login", data={"username": ADMIN, "password": "nope",
                                                       "csrf": csrf_of(page.text)})
    assert wrong_user.status_code == wrong_password.status_code == 401
    assert "Wrong user name or password." in wrong_user.text and "Wrong user name or password." in wrong_password.text


def test_a_server_error_shows_no_stack_trace(app_factory):
    def broken_maker(path):
        raise RuntimeError(f"internal detail of {path}")

    with TestClient(app_factory(load_maker=broken_maker), raise_server_exceptions=False) as client:
        log_in(client)
        response = client.post("/admin/studies/teaching", data={"csrf": admin_csrf(client), "name": "T",
                                                                "source": "synthetic"})
    assert response.status_code == 500
    assert "internal detail" not in response.text and "Traceback" not in response.text
    assert "Something went wrong" in response.text


def test_pages_forbid_caching_framing_and_referrers(world):
    response = TestClient(world["app"]).get(f"/r/{world['reader']}")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_printed_address_leads_a_newcomer_on(world):
    """`pathosynth serve` prints the server's address; opened as is, it must not be a 404."""
    response = TestClient(world["app"]).get("/")
    assert response.status_code == 200
    assert "personal link" in response.text and 'href="/admin"' in response.text


def test_a_nul_byte_anywhere_is_one_sentence_and_changes_nothing(world):
    admin, reader = world["admin"], world["reader"]
    csrf, reader_csrf = admin_csrf(admin), csrf_token(world["app"].state.reader.secret, f"reader:{reader}")
    studies_before = admin.get("/admin").text
    hostile = {
        "a form field": lambda: admin.post("/admin/studies/vtt", data={
            "csrf": csrf, "name": "NUL", "folder-0": "real\x00", "counts-0": "tumour=1", "ask-origin": "1"}),
        "a field's name": lambda: admin.post("/admin/studies/survey", data={"csrf": csrf, "name": "S", "x\x00": "1"}),
        "a multipart form": lambda: admin.post("/admin/studies/survey", data={"csrf": csrf, "name": "S\x00"},
                                               files={"attachment": ("a.txt", b"text")}),
        "the login form": lambda: TestClient(world["app"]).post("/admin/login", data={"username": "admin\x00"}),
        "a reader's answer": lambda: TestClient(world["app"]).post(f"/r/{reader}/answer", data={
            "csrf": reader_csrf, "number": "1", "origin": "real\x00", "confidence": "3"}),
        "a query": lambda: admin.get("/admin/studies/new", params={"kind": "vtt\x00"}),
        "a link": lambda: TestClient(world["app"]).get(f"/r/{reader}%00"),
        "a cookie": lambda: TestClient(world["app"], cookies={"ps_admin": '"a\\000b"'}).get("/admin"),
    }
    for where, send in hostile.items():
        response = send()
        assert response.status_code == 400, (where, response.status_code)
        assert re.search(r'<p id="message">([^<]+)</p>', response.text).group(1) == NUL_MESSAGE, where
    assert admin.get("/admin").text == studies_before  # no study was made
    assert TestClient(world["app"]).get(f"/r/{reader}/case/1").status_code == 200  # the case is still unanswered


def directives(policy: str) -> dict[str, list[str]]:
    parts = [part.split() for part in policy.split(";") if part.strip()]
    return {part[0]: part[1:] for part in parts}


def test_the_content_security_policy_allows_no_inline_script_or_style(world):
    for path in ("/", f"/r/{world['reader']}/case/1", f"/t/{world['trainee']}", "/admin/login"):
        policy = directives(TestClient(world["app"]).get(path).headers["content-security-policy"])
        assert policy["script-src"] == ["'self'"], policy
        assert policy["style-src"] == ["'self'"], policy
        assert "'unsafe-inline'" not in sum(policy.values(), [])


TEMPLATES = Path(reader_package.__file__).parent / "templates"
STATIC = Path(reader_package.__file__).parent / "static"


def test_no_template_holds_an_inline_script_style_or_handler():
    for template in sorted(TEMPLATES.glob("*.html")):
        html = template.read_text()
        for attributes, content in re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I):
            assert "src=" in attributes and not content.strip(), f"{template.name}: inline script {content[:60]!r}"
        assert not re.search(r"<style\b", html, re.I), f"{template.name}: a <style> block"
        assert not re.search(r"\sstyle\s*=", html, re.I), f"{template.name}: a style attribute"
        assert not re.search(r"\son[a-z]+\s*=", html, re.I), f"{template.name}: an inline event handler"


def test_the_scripts_and_style_sheet_the_pages_name_are_served(world):
    named = {name for template in TEMPLATES.glob("*.html")
             for name in re.findall(r'(?:src|href)="/static/([^"]+)"', template.read_text())}
    assert named == {path.name for path in STATIC.iterdir()}, "a static file is missing or unused"
    for name in named:
        response = TestClient(world["app"]).get(f"/static/{name}")
        assert response.status_code == 200
        expected = "text/css" if name.endswith(".css") else "javascript"
        assert expected in response.headers["content-type"], (name, response.headers["content-type"])
        assert response.headers["x-content-type-options"] == "nosniff"
