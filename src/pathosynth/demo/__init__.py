"""`pathosynth demo`: the built-in datasets, built, described and shown; then the 2D lesion
inpainter trained on the glioma set and lesions painted into real slices (demo/lesions.py); a small
3D MCGAN placing nodules of each kind into a chest CT scan (demo/ct.py); then the painted slices
audited for near-copies, the classification experiment, image metrics and t-SNE, and one report
over all of it (demo/evaluate.py).

The experiment is built to answer its question (issues 15 and 17): the glioma set has 100 patients
split 30/10/60, so the test split holds 60 patients, and the classifiers and the inpainter train on
the same 8 seeded training patients, the low-data regime where augmentation is expected to matter
(the issue-17 augmentation bar: at most 8 training patients, at least 40 test patients, 3 repeats).

A dataset folder that a previous run finished is reused (folders appear only when complete), so an
interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from pathosynth.data.importers.luna16 import Luna16Options, import_luna16
from pathosynth.data.inspect import dataset_info, format_info, show_dataset
from pathosynth.data.phantoms import DEFAULT_PATIENTS, build_phantom, phantom_provenance
from pathosynth.data.splits import SplitPlan
from pathosynth.errors import UserError


# Beyond the phantoms' defaults: a glioma test split of 60 patients; a metastasis set smaller than
# the default 40 keeps the demo in budget.
DEMO_PATIENTS = {"brain-mr": 100, "brain-metastases": 24}
DEMO_BRAIN_SPLIT = (0.3, 0.1, 0.6)
TINY_PATIENTS = {"brain-mr": 6, "brain-metastases": 4, "chest-ct": 6, "radiograph": 24}
# The low-data regime of the classification experiment: the classifiers and the inpainter train on
# this many of the glioma set's training patients (drawn with the demo's seed).
TRAIN_PATIENTS = 8
TINY_TRAIN_PATIENTS = 2


def run_demo(out: str | Path, *, seed: int = 0, tiny: bool = False, overwrite: bool = False,
             progress: bool = True) -> list[Path]:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; give --out a folder")
    out.mkdir(parents=True, exist_ok=True)
    plan = SplitPlan(seed=seed)
    patients = TINY_PATIENTS if tiny else DEMO_PATIENTS
    plans = {} if tiny else {"brain-mr": SplitPlan(DEMO_BRAIN_SPLIT, seed)}
    built = []

    def fresh(name: str) -> bool:
        done = (out / name / "dataset.json").is_file()
        if done and not overwrite:
            click.echo(f"{name}: reusing {out / name} (pass --overwrite to rebuild)")
        return overwrite or not done

    for kind in ("brain-mr", "brain-metastases", "radiograph"):
        if fresh(kind):
            build_phantom(kind, out / kind, seed=seed, patients=patients.get(kind), tiny=tiny,
                          plan=plans.get(kind, plan), overwrite=True, progress=progress)
        built.append(out / kind)
    if fresh("chest-ct") or fresh("chest-ct-scans"):
        # one raw LUNA16-layout phantom, imported twice: nodule VOIs and whole scans
        with tempfile.TemporaryDirectory(prefix="pathosynth-demo-") as scratch:
            raw = Path(scratch) / "luna16"
            build_phantom("chest-ct", out / "chest-ct", seed=seed, patients=patients.get("chest-ct"), tiny=tiny,
                          plan=plan, keep_raw=raw, overwrite=True, progress=progress)
            count = patients.get("chest-ct") or DEFAULT_PATIENTS["chest-ct"]
            import_luna16(raw, out / "chest-ct-scans", Luna16Options(kind="scans"), plan, overwrite=True,
                          progress=progress, provenance=phantom_provenance("chest-ct", seed, count, tiny))
    built += [out / "chest-ct", out / "chest-ct-scans"]
    for path in built:
        summary = dataset_info(path, progress=progress)
        (out / f"{path.name}-info.json").write_text(json.dumps(summary, indent=2) + "\n")
        text = format_info(summary)
        (out / f"{path.name}-info.txt").write_text(text + "\n")
        preview = show_dataset(path, out / f"{path.name}-preview.png", n=16, seed=seed)
        click.echo(f"\n{text}\n  preview: {preview}")
    from pathosynth.demo.lesions import RUN, run_demo_lesions

    click.echo("")
    train_patients = TINY_TRAIN_PATIENTS if tiny else TRAIN_PATIENTS
    run_demo_lesions(out, seed=seed, tiny=tiny, train_patients=train_patients, progress=progress)
    from pathosynth.demo.ct import run_demo_ct

    click.echo("")
    run_demo_ct(out, out / "chest-ct", out / "chest-ct-scans", seed=seed, tiny=tiny, progress=progress)
    from pathosynth.demo.evaluate import run_demo_evaluation

    click.echo("")
    report_dir = run_demo_evaluation(
        out, out / "brain-mr", out / "brain-synthetic",
        [out / "brain-mr", out / "runs" / RUN, out / "brain-synthetic", out / "brain-synthetic-boxes"],
        seed=seed, tiny=tiny, train_patients=train_patients, progress=progress)
    click.echo(f"\ndemo finished: datasets, runs, synthetic sets, info and previews are in {out}\n"
               f"open the report: {report_dir / 'report.html'}\n"
               f"show the images to physicians (Visual Turing Test, teaching; README 'Reader studies'):\n"
               f"  pathosynth admin admin && pathosynth serve --data-root {out}")
    return built
