"""The reader app under test: on a SQLite file and on a real PostgreSQL server (from
`scripts/services.sh`, which `scripts/test.sh` runs), each test on a database of its own."""

from __future__ import annotations

import os
import re
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pathosynth.reader.app import Limits, create_app
from pathosynth.reader.db import open_database
from pathosynth.reader.studies import create_admin
from tests.reader.folders import write_folder

ADMIN, PASSWORD = "admin", "correct horse battery"
POSTGRES_ENV = "PATHOSYNTH_TEST_POSTGRES_URL"


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.fail(f"{POSTGRES_ENV} is not set: run the tests through scripts/test.sh, which starts PostgreSQL")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'studies.sqlite'}"
        return
    server = make_url(postgres_url())
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def image(rng: np.random.Generator, bright: bool) -> np.ndarray:
    values = rng.integers(0, 1000, (32, 32))
    if bright:
        values[10:20, 12:22] += 3000
    return values.astype(np.uint16)


@pytest.fixture(scope="session")
def vtt_folders(tmp_path_factory):
    """A real and a synthetic brain-MR-like folder: 4 tumour + 4 healthy slices each, one per patient."""
    root = tmp_path_factory.mktemp("vtt")
    rng = np.random.default_rng(0)
    folders = {}
    for origin in ("real", "synthetic"):
        rows = [(f"{origin[0]}{label[0]}{i}", f"{origin}-{label}-{i}", label, image(rng, label == "tumour"),
                 [[12, 10, 22, 20]] if label == "tumour" else [], "test")
                for label in ("tumour", "healthy") for i in range(4)]
        folders[origin] = write_folder(root / origin, rows, synthetic=origin == "synthetic")
    return root, folders


@pytest.fixture
def app_factory(database_url, vtt_folders):
    root, _ = vtt_folders

    def make(**options):
        options.setdefault("data_root", root)
        return create_app(database_url, **options)

    _engine, sessions = open_database(database_url)
    with sessions() as session:
        create_admin(session, ADMIN, PASSWORD)
    _engine.dispose()
    return make


@pytest.fixture
def client(app_factory):
    with TestClient(app_factory(limits=Limits(per_minute=6))) as test_client:
        yield test_client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def log_in(client: TestClient) -> None:
    page = client.get("/admin/login")
    response = client.post("/admin/login", data={"username": ADMIN, "password": PASSWORD, "csrf": csrf_of(page.text)},
                           follow_redirects=False)
    assert response.status_code == 303, response.text


def admin_csrf(client: TestClient) -> str:
    return csrf_of(client.get("/admin").text)


def make_vtt(client: TestClient, *, questions=("origin", "confidence"), survey=False, counts="tumour=2, healthy=2",
             name="VTT") -> int:
    form = {"csrf": admin_csrf(client), "name": name, "folder-0": "real", "counts-0": counts,
            "folder-1": "synthetic", "counts-1": counts, "seed": "0"}
    form.update({f"ask-{q}": "1" for q in questions})
    if survey:
        form["with-survey"] = "1"
    response = client.post("/admin/studies/vtt", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def invite(client: TestClient, study_id: int, *names: str) -> list[str]:
    """Invite readers; return their personal links' paths in the order given."""
    client.post(f"/admin/studies/{study_id}/readers", data={"csrf": admin_csrf(client), "names": "\n".join(names)})
    page = client.get(f"/admin/studies/{study_id}").text
    links = re.findall(r'<code class="link">https?://[^/]+(/[rt]/[^<]+)</code>', page)
    return links[-len(names):]
