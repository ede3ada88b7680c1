"""Teaching mode over HTTP, with a pool of synthetic images as the case maker: a trainee asks for
cases, takes a quiz with immediate feedback, and the coverage and score add up; requests are
rate-limited; every case is marked synthetic."""

from __future__ import annotations

import csv
import io
import re

from fastapi.testclient import TestClient

from pathosynth.reader.app import Limits
from pathosynth.reader.teaching_sources import PoolMaker
from tests.reader.conftest import admin_csrf, csrf_of, invite, log_in


def teaching_client(app_factory, per_minute: int = 20) -> TestClient:
    return TestClient(app_factory(load_maker=PoolMaker, limits=Limits(per_minute=per_minute)))


def make_teaching(client: TestClient, quiz_length: int = 3) -> tuple[int, str]:
    log_in(client)
    response = client.post("/admin/studies/teaching", data={
        "csrf": admin_csrf(client), "name": "Brain MR teaching", "source": "synthetic",
        "quiz_length": str(quiz_length), "atypical_share": "0.5"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    study_id = int(response.headers["location"].rsplit("/", 1)[1])
    (link,) = invite(client, study_id, "Trainee T")
    assert link.startswith("/t/")
    return study_id, link


def test_a_trainee_asks_for_a_case_where_they_drew_it(app_factory):
    with teaching_client(app_factory) as client:
        _, link = make_teaching(client)
        home = client.get(link)
        assert home.status_code == 200 and "SYNTHETIC" in home.text and '<canvas id="frame"' in home.text
        response = client.post(f"{link}/request", data={"csrf": csrf_of(home.text), "label": "tumour",
                                                        "x0": "12", "y0": "10", "x1": "22", "y1": "20"},
                               follow_redirects=False)
        assert response.status_code == 303
        page = client.get(response.headers["location"]).text
        assert "SYNTHETIC: made by test-gan, not a patient" in page and "Your case: tumour" in page
        case_url = response.headers["location"]
        plain, outlined = client.get(f"{case_url}/image"), client.get(f"{case_url}/image?outlined=1")
        assert plain.status_code == outlined.status_code == 200 and plain.content != outlined.content


def test_the_quiz_gives_feedback_a_score_and_coverage(app_factory):
    with teaching_client(app_factory) as client:
        study_id, link = make_teaching(client, quiz_length=3)
        answers = []
        for _ in range(3):
            home = client.get(link).text
            response = client.post(f"{link}/quiz", data={"csrf": csrf_of(home)}, follow_redirects=False)
            case_url = response.headers["location"]
            question = client.get(case_url).text
            assert "Quiz question" in question and "Correct" not in question
            assert client.get(f"{case_url}/image?outlined=1").status_code == 403  # no peeking at the lesion
            # a second click on "next question" returns the same open question
            again = client.post(f"{link}/quiz", data={"csrf": csrf_of(home)}, follow_redirects=False)
            assert again.headers["location"] == case_url
            answer = client.post(f"{case_url}/answer", data={"csrf": csrf_of(question), "choice": "tumour"},
                                 follow_redirects=False)
            assert answer.status_code == 303
            feedback = client.get(case_url).text
            correct = "Correct: this is tumour" in feedback
            assert correct or "Not quite: this is healthy (you said tumour)" in feedback
            # a double submit with another choice changes nothing
            client.post(f"{case_url}/answer", data={"csrf": csrf_of(question), "choice": "healthy"})
            assert ("Correct: this is tumour" in client.get(case_url).text) == correct
            answers.append(correct)
        home = client.get(link).text
        assert f"Current quiz: {sum(answers)}/3 correct" in home
        seen = re.findall(r"<tr><td>(tumour|healthy)</td><td>(typical|atypical)</td>\s*<td>(\d+)</td>", home)
        assert sum(int(n) for *_, n in seen) == 3
        rows = list(csv.DictReader(io.StringIO(client.get(f"/admin/studies/{study_id}/export.csv").text)))
        assert [row["correct"] == "True" for row in rows] == answers
        assert {row["mode"] for row in rows} == {"quiz"} and all(row["model"] == "test-gan" for row in rows)


def test_on_demand_cases_are_rate_limited_per_trainee(app_factory):
    with teaching_client(app_factory, per_minute=2) as client:
        _, link = make_teaching(client)
        csrf = csrf_of(client.get(link).text)
        codes = [client.post(f"{link}/request", data={"csrf": csrf, "label": "healthy"},
                             follow_redirects=False).status_code for _ in range(3)]
        assert codes == [303, 303, 429]
        refused = client.post(f"{link}/request", data={"csrf": csrf, "label": "healthy"})
        assert "the limit is 2" in refused.text and refused.headers["retry-after"] == "60"


def test_a_box_outside_the_image_is_one_clear_sentence(app_factory):
    with teaching_client(app_factory) as client:
        _, link = make_teaching(client)
        csrf = csrf_of(client.get(link).text)
        response = client.post(f"{link}/request", data={"csrf": csrf, "label": "tumour", "x0": "20", "y0": "20",
                                                        "x1": "90", "y1": "90"})
        assert response.status_code == 400
        message = re.search(r'<p id="message">([^<]+)</p>', response.text).group(1)
        assert "box" in message and "Traceback" not in response.text
