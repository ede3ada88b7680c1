"""Teaching cases made on demand by trained runs through the web app: a box-conditioned 2D GAN
puts the tumour where the trainee drew it; a 3D MCGAN places the nodule asked for into a CT scan."""

from __future__ import annotations

import csv
import io
import re

from fastapi.testclient import TestClient

from pathosynth.reader.app import Limits
from pathosynth.generate.teaching import load_maker
from tests.reader.conftest import admin_csrf, csrf_of, invite, log_in


def teaching_link(client: TestClient, source: str, base_scans: str = "") -> tuple[int, str]:
    log_in(client)
    response = client.post("/admin/studies/teaching", data={
        "csrf": admin_csrf(client), "name": "On demand", "source": source, "base_scans": base_scans,
        "quiz_length": "2", "atypical_share": "0.5"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    study_id = int(response.headers["location"].rsplit("/", 1)[1])
    return study_id, invite(client, study_id, "Trainee")[0]


def test_a_box_conditioned_run_makes_the_tumour_where_the_trainee_drew_it(app_factory, teaching_runs,
                                                                           tmp_path_factory):
    root = tmp_path_factory.getbasetemp()
    with TestClient(app_factory(load_maker=load_maker, data_root=root, limits=Limits(per_minute=10))) as client:
        study_id, link = teaching_link(client, str(teaching_runs["cpggan"].relative_to(root)))
        home = client.get(link).text
        assert '<canvas id="frame"' in home
        made = client.post(f"{link}/request", data={"csrf": csrf_of(home), "label": "tumour", "x0": "4", "y0": "6",
                                                    "x1": "12", "y1": "14"}, follow_redirects=False)
        page = client.get(made.headers["location"]).text
        assert "Your case: tumour" in page and "SYNTHETIC" in page
        assert client.get(f"{made.headers['location']}/image").headers["content-type"] == "image/png"
        rows = list(csv.DictReader(io.StringIO(client.get(f"/admin/studies/{study_id}/export.csv").text)))
        assert rows[0]["label"] == "tumour" and re.fullmatch(r"[0-9a-f]{64}", rows[0]["checkpoint_sha256"])


def test_a_nodule_run_places_the_nodule_asked_for_and_quizzes_attenuation(app_factory, teaching_runs, tiny_chest,
                                                                          tmp_path_factory):
    root = tmp_path_factory.getbasetemp()
    scans = str((tiny_chest[1] / "subset0").relative_to(root))
    with TestClient(app_factory(load_maker=load_maker, data_root=root, limits=Limits(per_minute=10))) as client:
        _, link = teaching_link(client, str(teaching_runs["mcgan"].relative_to(root)), base_scans=scans)
        home = client.get(link).text
        assert 'name="attenuation"' in home and 'name="size"' in home and "<canvas" not in home
        made = client.post(f"{link}/request", data={"csrf": csrf_of(home), "label": "nodule", "size": "large",
                                                    "attenuation": "ggn"}, follow_redirects=False)
        assert made.status_code == 303, made.text
        page = client.get(made.headers["location"]).text
        assert "<th>Size</th><td>large</td>" in page and "<th>Attenuation</th><td>ggn</td>" in page
        assert "pasted into a real CT scan" in page
        quiz = client.post(f"{link}/quiz", data={"csrf": csrf_of(home)}, follow_redirects=False)
        question = client.get(quiz.headers["location"]).text
        assert "<strong>Attenuation</strong>" in question
