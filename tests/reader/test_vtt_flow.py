"""A Visual Turing Test through the HTTP API, on SQLite and on PostgreSQL: an admin makes it and
invites readers; readers answer (resuming, double-submitting); the admin exports and reads results."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from tests.reader.conftest import admin_csrf, csrf_of, invite, log_in, make_vtt
from tests.reader.folders import write_folder


def answer_case(client: TestClient, link: str, page: str, origin: str = "real", confidence: int = 3,
                label: str | None = None):
    number = int(re.search(r'name="number" value="(\d+)"', page).group(1))
    form = {"csrf": csrf_of(page), "number": str(number), "origin": origin, "confidence": str(confidence)}
    if label:
        form["label"] = label
    return number, form, client.post(f"{link}/answer", data=form, follow_redirects=False)


def test_a_reader_completes_a_study_and_the_admin_exports_it(client):
    log_in(client)
    study_id = make_vtt(client)
    link, other = invite(client, study_id, "Dr A", "Dr B")
    home = client.get(link)
    assert home.status_code == 200 and "8 images" in home.text

    page = client.get(f"{link}/case/1")
    seen = []
    for step in range(8):
        number, form, response = answer_case(client, link, page.text, origin="real" if step % 2 else "synthetic",
                                             confidence=1 + step % 5)
        assert response.status_code == 303
        seen.append(number)
        if step == 2:  # a double submit of the same answer form changes nothing
            again = client.post(f"{link}/answer", data=form, follow_redirects=False)
            assert again.status_code == 303 and again.headers["location"] == response.headers["location"]
        page = client.get(response.headers["location"])
    assert seen == list(range(1, 9))
    assert response.headers["location"] == f"{link}/done"

    rows = list(csv.DictReader(io.StringIO(client.get(f"/admin/studies/{study_id}/export.csv").text)))
    assert len(rows) == 8 and {row["reader"] for row in rows} == {"Dr A"}
    assert len({row["case"] for row in rows}) == 8
    assert {row["truth_origin"] for row in rows} == {"real", "synthetic"}
    assert all(float(row["seconds"]) >= 0 for row in rows)
    exported = json.loads(client.get(f"/admin/studies/{study_id}/export.json").text)
    assert [row["case"] for row in exported["answers"]] == [row["case"] for row in rows]
    # the first answer stands: the double-submitted case has the step-2 answer
    assert [row["answer_origin"] for row in rows] == ["synthetic", "real"] * 4

    results = client.get(f"/admin/studies/{study_id}/results").text
    assert "Real as Real" in results and "Synthetic as Synthetic" in results and "Dr A" in results
    # every case is listed with the image the readers saw, synthetic ones first
    keys = re.findall(r'<img src="/admin/studies/\d+/cases/(case-\d+)"', results)
    assert sorted(keys) == sorted(row["case"] for row in rows)
    truths = {row["case"]: row["truth_origin"] for row in rows}
    assert [truths[k] for k in keys] == ["synthetic"] * 4 + ["real"] * 4
    first = client.get(f"/admin/studies/{study_id}/cases/{keys[0]}")
    assert first.headers["content-type"] == "image/png" and first.content[:4] == b"\x89PNG"
    # confidences 1, 2, 3, 4, 5, 1, 2, 3 were given
    by_confidence = re.findall(r"<tr><td>(\d)</td><td>(\d+)</td>", results)
    assert by_confidence == [("1", "2"), ("2", "2"), ("3", "2"), ("4", "1"), ("5", "1")]
    progress = client.get(f"/admin/studies/{study_id}").text
    assert "8 / 8" in progress and "0 / 8" in progress
    assert client.get(other).status_code == 200


def test_each_reader_has_a_stable_order_and_resumes_where_they_left(client):
    log_in(client)
    study_id = make_vtt(client)
    first, second = invite(client, study_id, "Dr A", "Dr B")
    images_a = [client.get(f"{first}/image/{n}").content for n in range(1, 9)]
    images_b = [client.get(f"{second}/image/{n}").content for n in range(1, 9)]
    assert sorted(images_a) == sorted(images_b)  # the same cases ...
    assert [client.get(f"{first}/image/{n}").content for n in range(1, 9)] == images_a  # ... in a stable order
    page = client.get(f"{first}/case/1").text
    answer_case(client, first, page)
    page = client.get(f"{first}/case/2").text
    answer_case(client, first, page)
    # coming back later: the link resumes at case 3; an answered case is not shown again
    assert f"{first}/case/3" in client.get(first).text
    assert client.get(f"{first}/case/1", follow_redirects=False).headers["location"] == f"{first}/case/3"


def test_a_questionnaire_follows_the_cases_and_its_answers_are_exported(client):
    log_in(client)
    study_id = make_vtt(client, survey=True, counts="tumour=1")
    (link,) = invite(client, study_id, "Dr A")
    page = client.get(f"{link}/case/1")
    for _ in range(2):
        _, _, response = answer_case(client, link, page.text)
        page = client.get(response.headers["location"])
    assert response.headers["location"] == f"{link}/survey"
    form = {"csrf": csrf_of(page.text), "likert-q1": "5", "text-q1": "Keen.", "likert-q3": "3", "text-q4": "More CT."}
    assert client.post(f"{link}/survey", data=form, follow_redirects=False).headers["location"] == f"{link}/done"
    rows = list(csv.DictReader(io.StringIO(client.get(f"/admin/studies/{study_id}/questionnaire.csv").text)))
    assert [(row["item"], row["likert"], row["text"]) for row in rows] == [
        ("q1", "5", "Keen."), ("q3", "3", ""), ("q4", "", "More CT.")]
    results = client.get(f"/admin/studies/{study_id}/results").text
    assert "physician training" in results and "More CT." in results


def test_label_questions_are_checked_and_stored(client):
    log_in(client)
    study_id = make_vtt(client, questions=("origin", "label", "confidence"), counts="tumour=1, healthy=1")
    (link,) = invite(client, study_id, "Dr A")
    page = client.get(f"{link}/case/1").text
    assert 'value="tumour"' in page and 'value="healthy"' in page
    number, form, response = answer_case(client, link, page, label="cancer")
    assert response.status_code == 400 and "choose one of healthy, tumour" in response.text
    form["label"] = "tumour"
    assert client.post(f"{link}/answer", data=form, follow_redirects=False).status_code == 303
    rows = json.loads(client.get(f"/admin/studies/{study_id}/export.json").text)["answers"]
    assert rows[0]["answer_label"] == "tumour" and rows[0]["truth_label"] in ("tumour", "healthy")


def test_a_closed_study_takes_no_answers(client):
    log_in(client)
    study_id = make_vtt(client, counts="tumour=1")
    (link,) = invite(client, study_id, "Dr A")
    page = client.get(f"{link}/case/1").text
    client.post(f"/admin/studies/{study_id}/open", data={"csrf": admin_csrf(client), "is_open": "0"})
    _, _, response = answer_case(client, link, page)
    assert response.status_code == 403
    assert client.get(f"{link}/case/1").status_code == 403


def test_a_questionnaire_on_its_own(client):
    log_in(client)
    made = client.post("/admin/studies/survey", data={"csrf": admin_csrf(client), "name": "Survey",
                                                      "items": "both: Useful for training?\nfree: Anything else?"},
                       follow_redirects=False)
    study_id = int(made.headers["location"].rsplit("/", 1)[1])
    (link,) = invite(client, study_id, "Dr A")
    start = re.search(r'id="start" href="([^"]+)"', client.get(link).text).group(1)
    assert start == f"{link}/survey"
    page = client.get(start).text
    assert "Useful for training?" in page and 'name="likert-q2"' not in page
    client.post(start, data={"csrf": csrf_of(page), "likert-q1": "4", "text-q2": "No."})
    rows = json.loads(client.get(f"/admin/studies/{study_id}/export.json").text)["answers"]
    assert [(row["item"], row["likert"], row["text"]) for row in rows] == [("q1", 4, ""), ("q2", None, "No.")]
    assert "2 / 2" in client.get(f"/admin/studies/{study_id}").text


def test_a_3d_study_shows_three_planes(client, vtt_folders):
    root, _ = vtt_folders
    rng = np.random.default_rng(2)
    for origin in ("real3d", "synthetic3d"):
        if (root / origin).exists():  # the session's folders are shared by both databases' runs
            continue
        rows = [(f"{origin}{i}", f"{origin}-p{i}", "nodule", (rng.normal(-800, 50, (16, 20, 24))).astype(np.float32),
                 [[8, 8, 6, 14, 14, 10]], "test") for i in range(2)]
        write_folder(root / origin, rows, synthetic=origin == "synthetic3d", modality="CT", unit="HU", dims=3,
                     classes=("nodule",))
    log_in(client)
    form = {"csrf": admin_csrf(client), "name": "CT", "folder-0": "real3d", "counts-0": "nodule=2",
            "folder-1": "synthetic3d", "counts-1": "nodule=2", "ask-origin": "1"}
    study_id = int(client.post("/admin/studies/vtt", data=form, follow_redirects=False)
                   .headers["location"].rsplit("/", 1)[1])
    (link,) = invite(client, study_id, "Dr A")
    shapes = {np.asarray(Image.open(io.BytesIO(client.get(f"{link}/image/{n}").content))).shape for n in range(1, 5)}
    assert shapes == {(256, 768)}
