"""Blinding over HTTP: what a reader's browser receives for a real case and for a synthetic one
differs in the pixels only: same URL pattern, same headers, same page, same image format, the same
byte length for every case of a study, and nothing read from the source folders at serving time."""

from __future__ import annotations

import io
import re
import shutil
import zlib

import numpy as np
from PIL import Image

from pathosynth.reader.cases import canonical_png
from pathosynth.reader.db import open_database
from pathosynth.reader.tables import Assignment, Case, Reader
from tests.reader.conftest import admin_csrf, invite, log_in, make_vtt
from tests.reader.folders import write_folder
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
    assert len({len(case["image"].content) for case in served}) == 1, "the file size tells cases apart"

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


def smooth_and_noisy_folders(root):
    """A real folder of smooth 16-bit slices and a synthetic one of noisy 8-bit slices: compressed,
    their renders differ in size by a factor of several."""
    rng = np.random.default_rng(3)
    ramp = np.add.outer(np.arange(48), np.arange(48)).astype(np.uint16) * 40
    smooth = [(f"s{i}", f"ps{i}", "tumour", ramp + 10 * i, [], "test") for i in range(3)]
    noisy = [(f"n{i}", f"pn{i}", "tumour", rng.integers(0, 256, (40, 56), dtype=np.uint8), [], "test")
             for i in range(3)]
    write_folder(root / "smooth-real", smooth, classes=("tumour",))
    write_folder(root / "noisy-synthetic", noisy, synthetic=True, classes=("tumour",))


def make_study_from(client, root, folders: list[str]):
    form = {"csrf": admin_csrf(client), "name": "sizes", "seed": "0", "ask-origin": "1"}
    for index, folder in enumerate(folders):
        form.update({f"folder-{index}": folder, f"counts-{index}": "tumour=3"})
    client.app.state.reader.data_root = root
    return client.post("/admin/studies/vtt", data=form, follow_redirects=False)


def test_every_case_image_of_a_study_has_the_same_byte_length(client, tmp_path):
    smooth_and_noisy_folders(tmp_path)
    log_in(client)
    made = make_study_from(client, tmp_path, ["smooth-real", "noisy-synthetic"])
    assert made.status_code == 303, made.text
    (link,) = invite(client, int(made.headers["location"].rsplit("/", 1)[1]), "Dr A")
    images = [client.get(f"{link}/image/{n}").content for n in range(1, 7)]
    pixels = [np.asarray(Image.open(io.BytesIO(image))) for image in images]
    # the contents are far apart in how well they compress, so a compressed encoding would differ ...
    packed = sorted(len(zlib.compress(p.tobytes())) for p in pixels)
    assert packed[-1] > 2 * packed[0]
    # ... and yet every file has the same length: the size says nothing about the source
    assert len({len(image) for image in images}) == 1


def test_a_study_mixing_2d_and_3d_folders_is_refused(client, tmp_path):
    rng = np.random.default_rng(4)
    write_folder(tmp_path / "slices", [(f"s{i}", f"p{i}", "tumour", rng.random((16, 16)), [], "test")
                                       for i in range(3)], classes=("tumour",))
    write_folder(tmp_path / "volumes", [(f"v{i}", f"q{i}", "tumour", rng.random((8, 16, 16)), [], "test")
                                        for i in range(3)], synthetic=True, classes=("tumour",), dims=3)
    log_in(client)
    made = make_study_from(client, tmp_path, ["slices", "volumes"])
    assert made.status_code == 400
    assert "needs all its folders 2D or all 3D" in made.text
