"""End to end in a real browser (Debian's Chromium, driven by playwright): the real server started by
the CLI (`pathosynth admin`, `pathosynth serve`); an admin makes a Visual Turing Test and invites a
reader through the forms; the reader, in a browser context of their own, answers, leaves, comes back
and finishes; the admin downloads the CSV export and reads the results. A trainee draws a box and
clicks on a lesion. The scripts are the app's static files under a Content Security Policy without
'unsafe-inline': the browser must report no violation of it on any page."""

from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, expect, sync_playwright

from pathosynth.reader.app import Limits, create_app
from pathosynth.reader.db import open_database
from pathosynth.reader.studies import create_admin
from pathosynth.reader.teaching_sources import PoolMaker
from tests.reader.conftest import ADMIN, PASSWORD, admin_csrf, image, invite, log_in
from tests.reader.folders import write_folder

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PATHOSYNTH = Path(sys.executable).parent / "pathosynth"
READER = "Dr Browser"
# the origin the reader clicks for cases 1..8 (both answers, so every cell of the table can fill)
ORIGINS = ["real", "synthetic", "real", "real", "synthetic", "synthetic", "real", "synthetic"]
TIMEOUT_MS = 30_000  # a bound on waiting, not a timing check: a loaded 2-core machine took over 10 s once


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers_http(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with opener.open(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def server(tmp_path, vtt_folders):
    """`pathosynth serve` on a free port, over a fresh SQLite file with one admin; its base URL."""
    root, _ = vtt_folders
    database = f"sqlite:///{tmp_path / 'studies.sqlite'}"
    made = subprocess.run([str(PATHOSYNTH), "admin", ADMIN, "--db", database], capture_output=True, text=True,
                          env=dict(os.environ, PATHOSYNTH_ADMIN_PASSWORD=PASSWORD), timeout=60)
    assert made.returncode == 0, f"`pathosynth admin` failed:\n{made.stdout}\n{made.stderr}"
    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(PATHOSYNTH), "serve", "--db", database, "--host", "127.0.0.1",
                                    "--port", str(port), "--data-root", str(root)],
                                   stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not answers_http(f"{base}/admin/login"):
            if process.poll() is not None:
                pytest.fail(f"`pathosynth serve` exited ({process.returncode}):\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"`pathosynth serve` did not answer on {base} within 30 s:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        print(f"--- server log ---\n{log_path.read_text()}")  # shown by pytest when the test fails


@pytest.fixture
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium: scripts/services.sh does it")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def new_page(browser: Browser, base: str, csp_violations: list[str] | None = None) -> Page:
    """A page in a browser context of its own; Chromium's reports of blocked inline scripts or styles
    go into `csp_violations`."""
    context = browser.new_context(base_url=base)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    if csp_violations is not None:
        page.on("console", lambda message: csp_violations.append(f"{page.url}: {message.text}")
                if "Content Security Policy" in message.text else None)
    return page


def is_case_page(response) -> bool:
    return response.request.method == "GET" and re.search(r"/r/[^/]+/case/\d+$", response.url) is not None


def check_case(page: Page, html: str, token: str, number: int) -> None:
    """The case page as the reader sees it: its heading, a loaded 512-pixel image, nothing that tells."""
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Case {number} of 8")
    image = page.locator("img.case-image")
    src = image.get_attribute("src")
    assert src == f"/r/{token}/image/{number}", f"the image URL should carry only the link and position: {src}"
    assert not re.search(r"real|synthetic", src.replace(token, "TOKEN"), re.I), src
    assert "truth" not in html.lower(), f"case {number}'s page source mentions the truth:\n{html}"
    assert 'name="origin"' in html and "/image/" in html, "the raw page source was not the case page"
    page.wait_for_function("() => { const i = document.querySelector('img.case-image');"
                           " return i && i.complete && i.naturalWidth > 0; }", timeout=TIMEOUT_MS)
    width = page.evaluate("() => document.querySelector('img.case-image').naturalWidth")
    assert width == 512, f"case {number}'s image did not load as a 512-pixel render (naturalWidth {width})"


def answer(page: Page, number: int) -> str:
    """Give an origin and a confidence, then save: odd cases by clicking the radio buttons and 'Save and
    next', even ones with the keyboard (R/S, 1-5, Enter); return the raw HTML of the page that follows
    when it is a case page (else '')."""
    confidence = str(1 + (number - 1) % 5)
    if number % 2:
        page.check(f'input[name="origin"][value="{ORIGINS[number - 1]}"]')
        page.check(f'input[name="confidence"][value="{confidence}"]')
        save = page.get_by_role("button", name="Save and next").click
    else:
        page.keyboard.press("r" if ORIGINS[number - 1] == "real" else "s")
        page.keyboard.press(confidence)
        save = lambda: page.keyboard.press("Enter")  # noqa: E731
    if number == 8:
        with page.expect_navigation(url=re.compile(r"/done$")):
            save()
        return ""
    with page.expect_response(is_case_page) as shown:
        save()
    page.wait_for_load_state()
    return shown.value.text()


def test_a_reader_answers_in_a_browser_and_the_admin_exports(server, browser):
    base = server
    csp_violations: list[str] = []

    # the admin logs in and makes the study through the forms
    admin = new_page(browser, base, csp_violations)
    admin.goto("/admin/login")
    admin.fill('input[name="username"]', ADMIN)
    admin.fill('input[name="password"]', PASSWORD)
    admin.get_by_role("button", name="Log in").click()
    admin.wait_for_url(f"{base}/admin")
    admin.get_by_role("link", name="New Visual Turing Test").click()
    admin.wait_for_url(re.compile(r"/admin/studies/new\?kind=vtt$"))
    expect(admin.get_by_role("heading", level=1),
           "the 'New Visual Turing Test' page did not render (see the server log below)").to_have_text(
        "New Visual Turing Test", timeout=3_000)
    admin.fill('input[name="name"]', "Browser VTT")
    admin.fill('input[name="folder-0"]', "real")
    admin.fill('input[name="counts-0"]', "tumour=2, healthy=2")
    admin.fill('input[name="folder-1"]', "synthetic")
    admin.fill('input[name="counts-1"]', "tumour=2, healthy=2")
    admin.check('input[name="ask-origin"]')
    admin.uncheck('input[name="ask-label"]')
    admin.check('input[name="ask-confidence"]')
    admin.get_by_role("button", name="Create the study").click()
    admin.wait_for_url(re.compile(r"/admin/studies/\d+$"))
    study_url = admin.url
    study_id = int(study_url.rsplit("/", 1)[1])
    expect(admin.get_by_role("heading", level=1)).to_have_text("Browser VTT")
    expect(admin.locator("main")).to_contain_text("8 cases")

    admin.fill('textarea[name="names"]', READER)
    admin.get_by_role("button", name="Create personal links").click()
    admin.wait_for_url(study_url)
    row = admin.locator("#progress tr", has_text=READER)
    expect(row).to_have_count(1)
    link = row.locator("code.link").inner_text().strip()
    assert re.fullmatch(rf"{re.escape(base)}/r/[A-Za-z0-9_-]+", link), link
    token = link.rsplit("/", 1)[1]

    # the reader, another person in a browser context of their own, answers 3 cases and leaves
    reader = new_page(browser, base, csp_violations)
    reader.goto(link)
    expect(reader.locator("main")).to_contain_text(f"Welcome, {READER}.")
    expect(reader.locator("main")).to_contain_text("0 of 8 answered.")
    with reader.expect_response(is_case_page) as shown:
        reader.get_by_role("link", name="Start").click()
    html = shown.value.text()
    for number in (1, 2, 3):
        check_case(reader, html, token, number)
        html = answer(reader, number)
    reader.context.close()

    # back later, in a fresh context (no cookies at all): the link resumes at case 4
    reader = new_page(browser, base, csp_violations)
    reader.goto(link)
    expect(reader.locator("main")).to_contain_text("3 of 8 answered.")
    with reader.expect_response(is_case_page) as shown:
        reader.get_by_role("link", name="Continue").click()
    html = shown.value.text()
    expect(reader.get_by_role("heading", level=1)).to_have_text("Case 4 of 8")
    for number in range(4, 9):
        check_case(reader, html, token, number)
        html = answer(reader, number)
    assert reader.url == f"{link}/done"
    expect(reader.get_by_role("heading", level=1)).to_have_text("Thank you")
    expect(reader.locator("#done")).to_contain_text("You answered 8 of 8 cases.")

    # the reader's browser holds no admin session: /admin and the export send it to the login page
    for path in ("/admin", f"/admin/studies/{study_id}/export.csv"):
        reader.goto(path)
        assert reader.url == f"{base}/admin/login", f"{path} let the reader in: {reader.url}"
        expect(reader.get_by_role("heading", level=1)).to_have_text("Log in")
    reader.context.close()

    # the admin downloads the CSV through the button and reads the results
    admin.goto(study_url)
    expect(admin.locator("#progress tr", has_text=READER)).to_contain_text("8 / 8")
    with admin.expect_download() as downloaded:
        admin.get_by_role("link", name="Export CSV").click()
    download = downloaded.value
    assert download.suggested_filename == f"study-{study_id}-answers.csv"
    with open(download.path(), newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["reader"] == READER]
    assert len(rows) == 8, rows
    assert len({row["case"] for row in rows}) == 8
    assert {row["truth_origin"] for row in rows} == {"real", "synthetic"}
    assert [row["answer_origin"] for row in rows] == ORIGINS, "the export's answers are not the ones clicked"
    assert [int(row["confidence"]) for row in rows] == [1 + n % 5 for n in range(8)]

    admin.get_by_role("link", name="Results").click()
    admin.wait_for_url(f"{study_url}/results")
    expect(admin.locator("main")).to_contain_text("Real as Real")
    expect(admin.locator("main")).to_contain_text(READER)
    admin.context.close()
    assert csp_violations == [], "the Content Security Policy blocked something:\n" + "\n".join(csp_violations)


@pytest.fixture
def teaching_server(tmp_path, vtt_folders):
    """The app serving a teaching session on a one-class pool of tumour slices (so the quiz asks
    where the lesion is) in a thread of this process, with a trainee's link; (base URL, link)."""
    root, _ = vtt_folders
    pool = tmp_path / "pool"
    rng = np.random.default_rng(5)
    write_folder(pool, [(f"t{i}", f"p{i}", "tumour", image(rng, True), [[12, 10, 22, 20]], "test") for i in range(3)],
                 synthetic=True, classes=("tumour",))
    database = f"sqlite:///{tmp_path / 'teaching.sqlite'}"
    engine, sessions = open_database(database)
    with sessions() as session:
        create_admin(session, ADMIN, PASSWORD)
    engine.dispose()
    app = create_app(database, load_maker=PoolMaker, data_root=tmp_path, limits=Limits(per_minute=100))
    with TestClient(app) as admin:
        log_in(admin)
        made = admin.post("/admin/studies/teaching", data={"csrf": admin_csrf(admin), "name": "Where",
                                                          "source": "pool", "atypical_share": "0"},
                          follow_redirects=False)
        (link,) = invite(admin, int(made.headers["location"].rsplit("/", 1)[1]), "Trainee")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not answers_http(f"{base}/admin/login"):
            assert time.monotonic() < deadline, f"the app did not answer on {base} within 30 s"
            time.sleep(0.1)
        yield base, link
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def drag(page: Page, selector: str, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A mouse drag between two points given as fractions of the element's box."""
    box = page.locator(selector).bounding_box()
    page.mouse.move(box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"], steps=5)
    page.mouse.up()


def test_a_trainee_draws_a_box_and_clicks_on_a_lesion(teaching_server, browser):
    base, link = teaching_server
    csp_violations: list[str] = []
    trainee = new_page(browser, base, csp_violations)

    # draw a box on the 32 x 32 frame: its corners go into the request form, in the frame's pixels
    trainee.goto(link)
    drag(trainee, "#frame", (0.25, 0.25), (0.75, 0.5))
    expect(trainee.locator("#box-text")).to_have_text(re.compile(r"Box: x \d+-\d+, y \d+-\d+"))
    corners = [int(trainee.input_value(f"#{name}")) for name in ("x0", "y0", "x1", "y1")]
    assert [abs(a - b) <= 1 for a, b in zip(corners, [8, 8, 24, 16])] == [True] * 4, corners
    trainee.get_by_role("button", name="Make this case").click()
    expect(trainee.get_by_role("heading", level=1)).to_have_text("Your case: tumour")

    # the quiz asks where the lesion is: a click on the image is the answer, in the image's pixels
    trainee.goto(link)
    trainee.get_by_role("button", name="Next quiz question").click()
    expect(trainee.locator("main")).to_contain_text("Click on the lesion.")
    trainee.wait_for_function("() => document.getElementById('clickable').naturalWidth > 0")
    # the lesion lies at canvas x 192-351, y 160-319 (see test_teaching_flow): click its centre
    shown = trainee.locator("#clickable").bounding_box()
    trainee.mouse.click(shown["x"] + 272 / 512 * shown["width"], shown["y"] + 240 / 512 * shown["height"])
    expect(trainee.locator("#clicked")).to_have_text(re.compile(r"You clicked at 27\d, 2[34]\d\."))
    trainee.get_by_role("button", name="Answer").click()
    expect(trainee.locator("#feedback")).to_contain_text("Correct: you clicked on the lesion")
    trainee.context.close()
    assert csp_violations == [], "the Content Security Policy blocked something:\n" + "\n".join(csp_violations)
