"""`pathosynth report`: folders recognised by what they hold, numbers read back, a checklist that
says what is missing, an HTML page with real tables, and no half-written report on bad input."""

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from pathosynth.config import make_config
from pathosynth.generate import generate
from pathosynth.evaluate.classify_headline import headline_sentences
from pathosynth.report import report
from pathosynth.report.render import Paragraph, Table, markdown_blocks
from pathosynth.training.loop import train


@pytest.fixture(scope="module")
def run_and_synthetic(tmp_path_factory, tiny_brain):
    root = tmp_path_factory.mktemp("report")
    run = train(make_config("dcgan", "tiny", data=str(tiny_brain)), root / "run", progress=False)
    return run, generate(run, 6, root / "syn", seed=0, batch=6, progress=False)


class _Cells(HTMLParser):
    """Every table cell's text, and the image sources, as a browser would parse them."""

    def __init__(self):
        super().__init__()
        self.cells, self.images, self._in_cell = [], [], False

    def handle_starttag(self, tag, attrs):
        self._in_cell = tag in ("td", "th")
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        if self._in_cell:
            self.cells.append(data.strip())

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False


def test_report_reads_every_folder_kind_and_checks_what_was_done(tmp_path, tiny_brain, run_and_synthetic):
    run, synthetic = run_and_synthetic
    audit = tmp_path / "audit"
    audit.mkdir()
    (audit / "audit.json").write_text(json.dumps({"summary": {
        "synthetic_images": 6, "synthetic_flagged": 1, "synthetic_flag_rate": 1 / 6,
        "held_out_flag_rate": 0.01, "held_out_flag_rate_cross_fitted": 0.02}, "notes": []}))
    out = report([synthetic, audit, run, tiny_brain], tmp_path / "rep", seed=0)

    markdown = (out / "report.md").read_text()
    # the flow's order whatever the order given: real data, run, synthetic set, audit
    positions = [markdown.index(h) for h in ("## Real dataset", "## GAN training run", "## Synthetic dataset",
                                             "## Memorization audit")]
    assert positions == sorted(positions)
    assert "1 of 6 synthetic images flagged" in markdown and "16.7%" in markdown
    checklist = dict(re.findall(r"^- \[[ x]\] (.*?): (yes|NO|n/a)", markdown, flags=re.M))
    assert checklist["GANs trained on the training split only"] == "yes"
    assert checklist["Every synthetic image marked synthetic"] == "yes"
    assert checklist["Memorization audit against the training patients"] == "yes"
    assert checklist["t-SNE of real vs synthetic images"] == "n/a"  # not given, and the report says so

    parsed = _Cells()
    parsed.feed((out / "report.html").read_text())
    steps = json.loads((run / "stats.jsonl").read_text().strip().splitlines()[-1])["step"]
    assert f"{steps} / {steps}" in parsed.cells  # the run's steps, read from its stats
    assert parsed.images and all((out / src).is_file() for src in parsed.images)
    facts = json.loads((out / "report.json").read_text())
    assert {f["kind"] for f in facts["folders"]} == {"real", "run", "synthetic", "audit"}


def test_markdown_tables_of_other_verbs_become_html_tables():
    blocks = markdown_blocks("# Results\n\nSome **bold** text\nwrapped.\n\n| setup | AUC |\n| --- | ---: |\n"
                             "| real | 0.70 |\n| + GAN | 0.72 |\n")
    tables = [b for b in blocks if isinstance(b, Table)]
    assert tables[0].header == ["setup", "AUC"] and tables[0].rows == [["real", "0.70"], ["+ GAN", "0.72"]]
    assert [b.text for b in blocks if isinstance(b, Paragraph)] == ["Some **bold** text wrapped."]


def test_a_folder_no_verb_wrote_ends_in_one_clear_error_and_no_report(tmp_path, tiny_brain):
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("hello")
    done = subprocess.run([sys.executable, "-m", "pathosynth", "report", str(tiny_brain), str(stray),
                           "--out", str(tmp_path / "rep")], capture_output=True, text=True)
    assert done.returncode != 0
    assert "stray: not a folder written by pathosynth" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "rep").exists() and not list(tmp_path.glob("*rep.partial*"))  # nothing half-written


@pytest.mark.parametrize("auc, sensitivity, verdict", [
    ((0.01, 0.05), (0.02, 0.30), "improved"), ((-0.05, -0.01), (-0.30, -0.01), "worsened"),
    ((-0.02, 0.03), (-0.05, 0.20), "not established"), ((0.01, 0.04), (-0.20, -0.02), "mixed")])
def test_the_headline_follows_the_primary_intervals_not_the_points(auc, sensitivity, verdict):
    def change(bounds):
        return {"mean": sum(bounds) / 2, "low": bounds[0], "high": bounds[1], "mdd": 0.04}

    results = {"test": {"patients": 44}, "groups": [{"pretrained": False, "competence": {
        "real_auc": 0.93, "floor": 0.8, "competent": True}, "rows": [
        {"setup": "classic", "difference_vs_classic": None},
        {"setup": "classic+gan:syn", "synthetic": "syn", "kind": "classic+gan", "difference_vs_classic": {
            "roc_auc": change(auc), "sensitivity_at_fixed_specificity": change(sensitivity),
            "sensitivity": {"mean": 0.5, "low": 0.4, "high": 0.6}}}]}]}
    (sentence,) = headline_sentences(results)
    assert sentence.split("): ", 1)[1].startswith(verdict), sentence
    assert f"{100 * sensitivity[0]:+.1f} to {100 * sensitivity[1]:+.1f}" in sentence
    assert "over 44 test patients" in sentence and "detects 0.040 or more" in sentence


def test_power_is_judged_on_the_headline_comparisons_only():
    """A synthetic-only row answers another question (train on synthetic, test on real); its wide
    difference must not fail the power item, while a weak headline comparison must."""
    from pathosynth.report import _classify_checks

    def experiment(gan_mdd):
        def diff(mdd):
            return {"roc_auc": {"mean": 0.0, "low": -0.01, "high": 0.01, "mdd": mdd},
                    "sensitivity_at_fixed_specificity": {"mean": 0.0, "low": -0.01, "high": 0.01, "mdd": 0.05}}

        rows = [{"setup": "real", "kind": "real"},
                {"setup": "gan:syn", "kind": "gan", "synthetic": "syn", "difference_vs_real": diff(gan_mdd)},
                {"setup": "synthetic-only:syn", "kind": "synthetic-only", "synthetic": "syn",
                 "difference_vs_real": diff(0.2)}]
        return {"results": {"test": {"patients": 60, "minimum_patients": 20}, "repeats": 2, "groups": [
            {"pretrained": False, "rows": rows, "competence": {"real_auc": 0.9, "floor": 0.8, "competent": True}}]}}

    def power(gan_mdd):
        return next(item for item in _classify_checks([experiment(gan_mdd)]) if item[0].startswith("Test split"))

    assert power(0.03)[1] is True and "roc_auc: detects 0.03 or more" in power(0.03)[2]
    assert power(0.08)[1] is False
