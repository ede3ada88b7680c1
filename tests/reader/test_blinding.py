"""Blinding over HTTP: what a reader's browser receives for a real case and for a synthetic one
differs in the pixels only: same URL pattern, same headers, same page, same image format and size
rules, and nothing read from the source folders at serving time."""

from __future__ import annotations

import io
import re
import shutil

import numpy as np
from PIL import Image

from pathosynth.reader.cases import canonical_png
from pathosynth.reader.db import open_database
from pathosynth.reader.tables import Assignment, Case, Reader
from tests.reader.conftest import invite, log_in, make_vtt
from tests.reader.test_cases import png_chunks

VARYING_HEADERS = {"content-length", "date"}


def served_cases(client, link: str, total: int) -> list[dict]:
    """Each case's image and page as the reader gets them, answering case by case."""
    served = []
    for number in range(1, total + 1):
        page = client.get(f"{link}/case/{number}")
        served.append({"number": number, "image": client.get(f"{link}/image/{number}"), "page": page})
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        client.post(f"{link}/answer", data={"csrf": csrf, "number": number, "origin": "real", "confidence": 3})
    return served


def without_number(page: str, number: int) -> str:
    for where in ("Case {} of", "image/{}\"", "alt=\"case {}\"", "name=\"number\" value=\"{}\""):
        page = page.replace(where.format(number), where.format("N"))
    return page


def truths(database_url: str, token: str) -> dict[int, str]:
    _engine, sessions = open_database(database_url)
    with sessions() as session:
        reader = session.query(Reader).filter(Reader.token == token).one()
        rows = session.query(Assignment.position, Case.truth_origin).join(Case, Assignment.case_id == Case.id) \
            .filter(Assignment.reader_id == reader.id).all()
    _engine.dispose()
    return {position + 1: origin for position, origin in rows}


def test_real_and_synthetic_cases_differ_in_their_pixels_only(client, database_url, vtt_folders):
    log_in(client)
    study_id = make_vtt(client)
    (link,) = invite(client, study_id, "Dr A")
    origin_of = truths(database_url, link.rsplit("/", 1)[1])
    assert sorted(origin_of.values()) == ["real"] * 4 + ["synthetic"] * 4

    served = served_cases(client, link, 8)
    for case in served:
        response = case["image"]
        assert response.status_code == 200
        assert f"/image/{case['number']}" in str(response.url) and "real" not in str(response.url)
        headers = {k: v for k, v in response.headers.items() if k not in VARYING_HEADERS}
        case["headers"] = headers
        chunks = png_chunks(response.content)
        assert set(chunks) == {"IHDR", "IDAT", "IEND"}, chunks  # no metadata chunk of any kind
        pixels = np.asarray(Image.open(io.BytesIO(response.content)))
        case["shape"] = pixels.shape
        # the bytes are the one encoder's output for these pixels: size and encoding follow from pixels
        assert canonical_png(pixels) == response.content
        assert int(response.headers["content-length"]) == len(response.content)
    assert all(case["headers"] == served[0]["headers"] for case in served)
    assert "content-disposition" not in served[0]["headers"] and "etag" not in served[0]["headers"]
    assert {case["shape"] for case in served} == {(512, 512)}

    # the case pages are one page up to the case's number: nothing about the case is in them
    assert "truth" not in served[0]["page"].text.lower()
    assert len({without_number(case["page"].text, case["number"]) for case in served}) == 1


def test_serving_never_reads_the_source_folders(client, database_url, vtt_folders, tmp_path):
    """The images are rendered once when the study is made: moving the folders away changes nothing,
    so the time to serve a case cannot depend on its source's format or location."""
    root, folders = vtt_folders
    copies = tmp_path / "copies"
    for name, folder in folders.items():
        shutil.copytree(folder, copies / name)
    log_in(client)
    form_root = client.app.state.reader.data_root
    client.app.state.reader.data_root = copies
    try:
        study_id = make_vtt(client)
    finally:
        client.app.state.reader.data_root = form_root
    (link,) = invite(client, study_id, "Dr A")
    before = [client.get(f"{link}/image/{n}").content for n in range(1, 9)]
    shutil.rmtree(copies)
    after = [client.get(f"{link}/image/{n}").content for n in range(1, 9)]
    assert before == after and all(before)
