"""`pathosynth <verb>`: a thin layer over the library functions of the same names."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pathosynth import __version__
from pathosynth.cli_serve import admin, serve
from pathosynth.cli_types import (COUNT, FRACTION, NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, SEED, TRAINING_BATCH,
                                  FiniteFloat)
from pathosynth.errors import UserError


def _split_plan(split: str, split_file: str | None, seed: int):
    from pathosynth.data.splits import SplitPlan, parse_ratios, read_split_file

    if split_file:
        return SplitPlan(explicit=read_split_file(split_file), seed=seed)
    return SplitPlan(ratios=parse_ratios(split), seed=seed)


def split_options(command):
    """The options every command that writes a dataset shares."""
    for option in reversed([
        click.option("--out", "out", required=True, type=click.Path(path_type=Path),
                     help="Dataset folder to create; it appears only when complete."),
        click.option("--split", default="0.7,0.15,0.15", show_default=True,
                     help="Patient-level train,val,test ratios."),
        click.option("--split-file", type=click.Path(), default=None,
                     help="CSV (patient_id,split) or JSON {split: [patients]} fixing every patient's split."),
        click.option("--seed", type=SEED, default=0, show_default=True,
                     help="Seed for the patient split (and phantoms)."),
        click.option("--overwrite", is_flag=True, help="Replace --out if it exists."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]):
        command = option(command)
    return command


def skip_bad_option(command):
    return click.option("--skip-bad", is_flag=True,
                        help="Import the rest when inputs are bad; list them in OUT/skipped.csv.")(command)


def _import_with(importer, src, out, options, split, split_file, seed, overwrite, skip_bad, quiet) -> None:
    path = importer(src, out, options, _split_plan(split, split_file, seed), overwrite=overwrite,
                    skip_bad=skip_bad, progress=not quiet)
    click.echo(f"wrote {path}")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="pathosynth")
def cli():
    """pathosynth: pathology-aware generative augmentation of medical images.

    Start with `pathosynth demo`: built-in data -> lesions painted into real brain slices and nodules
    into a CT scan -> memorization audit -> classification experiment, image metrics, t-SNE -> one
    report (about 18 minutes on a 2-core CPU; `--tiny` for a one-minute smoke run).

    Reader studies and teaching in a browser: `pathosynth admin NAME`, then `pathosynth serve`.
    """


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-output"), show_default=True,
              help="Folder for the demo's datasets, info and previews.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--tiny", is_flag=True, help="Tiny datasets (seconds), for a smoke test.")
@click.option("--overwrite", is_flag=True, help="Rebuild datasets that a previous run already finished.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out, seed, tiny, overwrite, quiet):
    """Built-in datasets, lesions painted into brain MR, nodules into chest CT, audit, experiments, report.

    Builds the built-in datasets (with info and previews), trains the 2D lesion inpainter on 8
    training patients of the glioma set and paints into their lesion-free slices (tumours at real
    layouts plus healthy repaints in the real class balance; and two lesions at random places per
    slice), trains a small 3D MCGAN and places one nodule of each size x attenuation kind into a
    chest CT scan, audits the painted slices for near-copies, runs the classification experiment
    (the same 8 training patients, 60 test patients, 3 repeats), image metrics and t-SNE, and writes
    OUT/report/report.html, whose headline says "not established" unless the data show an effect.
    Finished steps are reused and started ones resume.
    """
    from pathosynth.demo import run_demo

    run_demo(out, seed=seed, tiny=tiny, overwrite=overwrite, progress=not quiet)


@cli.group()
def data():
    """Import, build, describe and show datasets."""


@data.command()
@click.argument("kind", type=click.Choice(["brain-mr", "brain-metastases", "chest-ct", "radiograph"]))
@split_options
@click.option("--patients", type=COUNT, default=None,
              help="Number of patients [default: brain-mr 40, brain-metastases 40, chest-ct 24, radiograph 160].")
@click.option("--kind", "kind_3d", type=click.Choice(["vois", "scans"]), default="vois", show_default=True,
              help="chest-ct only: nodule VOIs (for 3D MCGAN) or whole scans (for detection).")
@click.option("--keep-raw", type=click.Path(path_type=Path), default=None,
              help="Also keep the raw layout (BraTS / LUNA16 / images+CSV) in this folder.")
@click.option("--tiny", is_flag=True, help="Tiny images, for tests.")
def phantom(kind, out, split, split_file, seed, overwrite, quiet, patients, kind_3d, keep_raw, tiny):
    """Build a built-in dataset (deterministic from --seed).

    brain-mr: gliomas as in BraTS HGG (T1c, slices 30-130, borderline slices left out), for
    classification; brain-metastases: several small metastases per patient with boxes and masks,
    for detection; chest-ct: nodule VOIs or scans as in LUNA16; radiograph: hips with fractures.
    """
    from pathosynth.data.phantoms import build_phantom

    path = build_phantom(kind, out, seed=seed, patients=patients, tiny=tiny,
                         plan=_split_plan(split, split_file, seed), kind_3d=kind_3d, keep_raw=keep_raw,
                         overwrite=overwrite, progress=not quiet)
    click.echo(f"wrote {path}")


@data.group(name="import")
def import_():
    """Import a folder in a layout the field uses (brats, luna16, folder)."""


@import_.command()
@click.argument("src", type=click.Path(path_type=Path))
@split_options
@skip_bad_option
@click.option("--sequences", default="t1ce", show_default=True,
              help="Comma list of t1,t1ce,t2,flair, or 'all' to stack the four as channels.")
@click.option("--slices", default="30-130", show_default=True, help="Axial slice range kept, 0-based, inclusive.")
@click.option("--pad-to", type=NON_NEGATIVE_INT, default=256, show_default=True,
              help="Zero-pad slices to this square size; 0 keeps it.")
@click.option("--min-tumour-area", type=NON_NEGATIVE_INT, default=0, show_default=True,
              help="Drop borderline slices whose tumour area (px) is above 0 but below this.")
@click.option("--min-brain-fraction", type=FRACTION, default=0.0, show_default=True,
              help="Drop slices with less brain than this fraction of the patient's largest brain slice.")
@click.option("--min-box-area", type=NON_NEGATIVE_INT, default=10, show_default=True,
              help="Tumour components below this (px) get no box.")
def brats(src, out, split, split_file, seed, overwrite, quiet, skip_bad, sequences, slices, pad_to,
          min_tumour_area, min_brain_fraction, min_box_area):
    """BraTS case folders (t1, t1ce, t2, flair, seg NIfTI) -> labelled 2D slices with tumour boxes."""
    from pathosynth.data.importers.brats import BratsOptions, import_brats, parse_sequences, parse_slice_range

    options = BratsOptions(sequences=parse_sequences(sequences), slices=parse_slice_range(slices), pad_to=pad_to,
                           min_tumour_area=min_tumour_area, min_brain_fraction=min_brain_fraction,
                           min_box_area=min_box_area)
    _import_with(import_brats, src, out, options, split, split_file, seed, overwrite, skip_bad, quiet)


@import_.command()
@click.argument("src", type=click.Path(path_type=Path))
@split_options
@skip_bad_option
@click.option("--annotations", type=click.Path(), default=None,
              help="Annotations CSV [default: SRC/annotations.csv]; optional attenuation or texture column.")
@click.option("--kind", type=click.Choice(["vois", "scans"]), default="vois", show_default=True,
              help="64^3 nodule VOIs (for 3D MCGAN) or whole scans with nodule boxes (for detection).")
@click.option("--spacing", type=POSITIVE, default=1.0, show_default=True, help="Isotropic resampling in mm.")
@click.option("--voi-size", type=click.IntRange(min=2), default=64, show_default=True)
@click.option("--nodule-box", type=COUNT, default=32, show_default=True,
              help="Edge of the central nodule box in a VOI.")
def luna16(src, out, split, split_file, seed, overwrite, quiet, skip_bad, annotations, kind, spacing, voi_size,
           nodule_box):
    """LUNA16 chest CT (.mhd + annotations.csv) -> nodule VOIs with size/attenuation, or scans."""
    from pathosynth.data.importers.luna16 import Luna16Options, import_luna16

    if spacing <= 0 or voi_size < 2 or not 0 < nodule_box <= voi_size:
        raise UserError("--spacing must be positive and 0 < --nodule-box <= --voi-size")
    options = Luna16Options(kind=kind, spacing=spacing, voi_size=voi_size, nodule_box=nodule_box,
                            annotations=annotations)
    _import_with(import_luna16, src, out, options, split, split_file, seed, overwrite, skip_bad, quiet)


@import_.command()
@click.argument("src", type=click.Path(path_type=Path))
@split_options
@skip_bad_option
@click.option("--csv", "csv_path", type=click.Path(), default=None,
              help="Label table [default: SRC/labels.csv]: file,label[,patient_id,boxes,split].")
@click.option("--classes", default=None, help="Comma list of allowed labels [default: those in the table].")
@click.option("--size", type=NON_NEGATIVE_INT, default=0, show_default=True,
              help="Letterbox images to SIZE x SIZE; 0 keeps them.")
@click.option("--modality", default="DX", show_default=True, help="DICOM modality code stored in dataset.json.")
def folder(src, out, split, split_file, seed, overwrite, quiet, skip_bad, csv_path, classes, size, modality):
    """A folder of 2D images plus a CSV of labels (and optional patients, boxes, splits)."""
    from pathosynth.data.importers.folder import FolderOptions, import_folder

    options = FolderOptions(csv=csv_path, size=size, modality=modality,
                            classes=tuple(c.strip() for c in classes.split(",")) if classes else None)
    _import_with(import_folder, src, out, options, split, split_file, seed, overwrite, skip_bad, quiet)


@data.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def info(dataset, as_json, quiet):
    """Counts by split, class and attribute; sizes; spacing; intensities; boxes."""
    from pathosynth.data.inspect import dataset_info, format_info

    summary = dataset_info(dataset, progress=not quiet)
    click.echo(json.dumps(summary, indent=2) if as_json else format_info(summary))


@data.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="PNG to write [default: DATASET-preview.png beside the dataset].")
@click.option("-n", "--n", "count", type=COUNT, default=16, show_default=True, help="Number of images.")
@click.option("--split", default=None, help="Only this split.")
@click.option("--label", default=None, help="Only this class.")
@click.option("--channel", type=NON_NEGATIVE_INT, default=0, show_default=True,
              help="Channel shown for multi-channel images.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Which samples are picked.")
def show(dataset, out, count, split, label, channel, seed):
    """A PNG grid of samples with their boxes drawn."""
    from pathosynth.data.inspect import show_dataset

    out = out or dataset.parent / f"{dataset.name}-preview.png"
    click.echo(f"wrote {show_dataset(dataset, out, count, split, label, channel, seed)}")


@cli.command()
@click.option("--model", type=click.Choice(["dcgan", "wgan", "pggan", "unet-cgan", "mcgan3d", "diffusion",
                                            "inpaint2d", "diffusion-inpaint"]),
              default=None, help="Generator family (required unless --resume); mcgan3d: 3D nodule inpainting on CT "
                                 "VOIs; diffusion: class-conditional DDIM with classifier-free guidance; inpaint2d: "
                                 "2D lesions painted into real slices; diffusion-inpaint: the same, painted by a "
                                 "mask-conditioned diffusion U-Net.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset folder (from `data import` or `data phantom`); its train split is used.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder to create.")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue this run folder from its last checkpoint (other options: only --steps, --lr-*).")
@click.option("--preset", type=click.Choice(["paper", "small", "tiny"]), default="small", show_default=True,
              help="paper: the papers' settings; small: minutes on a 2-core CPU; tiny: tests.")
@click.option("--classes", type=click.Choice(["conditional", "separate", "none"]), default=None,
              help="One GAN with the label as input, one GAN per class (the papers), or labels ignored.")
@click.option("--label", default=None, help="Train on this class only (implies --classes none).")
@click.option("--boxes", is_flag=True, default=None,
              help="Condition on lesion boxes: CPGGAN with pggan; always on for unet-cgan.")
@click.option("--resolution", type=COUNT, default=None, help="Training size in px, a power of two.")
@click.option("--steps", type=COUNT, default=None, help="Generator updates.")
@click.option("--batch", type=TRAINING_BATCH, default=None)
@click.option("--lr-g", type=POSITIVE, default=None)
@click.option("--lr-d", type=POSITIVE, default=None)
@click.option("--width", type=COUNT, default=None, help="Channels at the finest level.")
@click.option("--latent-dim", type=COUNT, default=None)
@click.option("--phase-steps", type=COUNT, default=None, help="PGGAN: steps per fade-in and per stabilisation.")
@click.option("--diffaugment", default=None,
              help="DiffAugment policy for D, e.g. brightness,contrast,translation,cutout ('' for none).")
@click.option("--spectral-norm/--no-spectral-norm", default=None,
              help="DCGAN/WGAN: spectrally normalise D's convolutions (beyond the papers; less mode collapse).")
@click.option("--nodule-box", type=COUNT, default=None,
              help="mcgan3d: side of the inpainted central box in VOI voxels [default: 32, in a 64 VOI].")
@click.option("--l1-weight", type=NON_NEGATIVE, default=None,
              help="unet-cgan / mcgan3d / inpaint2d: weight of the L1 term to the real image [mcgan3d: 0, off; "
                   "the paper's alternative is 100; inpaint2d: 10, in the hole].")
@click.option("--sample-every", type=COUNT, default=None)
@click.option("--checkpoint-every", type=COUNT, default=None)
@click.option("--split", default=None, help="Dataset split to train on [default: train].")
@click.option("--train-patients", type=COUNT, default=None,
              help="2D: train on this many patients of the split (the low-data regime), drawn with --subset-seed; "
                   "`evaluate classify` with the same two options uses the same patients.")
@click.option("--subset-seed", type=SEED, default=None, help="Which patients --train-patients draws [default: 0].")
@click.option("--seed", type=SEED, default=None, help="[default: 0]")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(model, data, out, resume, preset, classes, label, boxes, resolution, steps, batch, lr_g, lr_d, width,
          latent_dim, phase_steps, diffaugment, spectral_norm, nodule_box, l1_weight, sample_every, checkpoint_every,
          split, train_patients, subset_seed, seed, quiet):
    """Train a generator (GAN, diffusion or lesion painter) on a dataset folder into a run folder.

    Ctrl-C writes a checkpoint; `--resume RUN` continues exactly. Several GPUs or nodes:
    `torchrun --nproc_per_node=K -m pathosynth train ...`.
    """
    from pathosynth.config import make_config
    from pathosynth.training.loop import resume_run, train as train_run

    if resume:
        path = resume_run(resume, progress=not quiet, steps=steps, lr_g=lr_g, lr_d=lr_d)
    else:
        missing = [name for name, value in (("--model", model), ("--data", data), ("--out", out)) if value is None]
        if missing:
            raise UserError(f"train needs {', '.join(missing)} (or --resume RUN to continue a run)")
        if label and classes is None:
            classes = "none"
        config = make_config(model, preset, data=str(data), classes=classes, label=label, boxes=boxes,
                             resolution=resolution, steps=steps, batch=batch, lr_g=lr_g, lr_d=lr_d, width=width,
                             latent_dim=latent_dim, phase_steps=phase_steps, diffaugment=diffaugment,
                             spectral_norm=spectral_norm, nodule_box=nodule_box, l1_weight=l1_weight,
                             sample_every=sample_every,
                             checkpoint_every=checkpoint_every, split=split, train_patients=train_patients,
                             subset_seed=subset_seed, seed=seed)
        path = train_run(config, out, progress=not quiet)
    click.echo(f"trained {path} (generator: {path}/checkpoints/generator.pt; samples: {path}/samples)")


@cli.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--n", "count", type=COUNT, default=None, help="2D runs: number of images.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder to create (a synthetic dataset, or scans + annotations); it appears only when complete.")
@click.option("--label", default=None, help="Class to generate [default: every class in turn].")
@click.option("--boxes", "boxes_text", default=None,
              help="Box-conditioned runs: boxes for every image, 'x0,y0,x1,y1;...' in px of the generated image.")
@click.option("--boxes-from", type=click.Path(path_type=Path), default=None,
              help="Box-conditioned runs: draw box layouts from this dataset folder [default: the training data].")
@click.option("--jitter", default=None,
              help="Move box layouts: flip,shift=F,zoom=F [default with layouts drawn from data: "
                   "flip,shift=0.1,zoom=0.1; 'none' for no jitter]. With --scans: shift=F,zoom=F of real "
                   "nodule positions [default: shift=0.1,zoom=0.1].")
@click.option("--ct", type=click.Path(path_type=Path), default=None,
              help="3D MCGAN runs: the CT scan to place nodules into (.mhd, .nii.gz, ... or a DICOM folder).")
@click.option("--at", multiple=True,
              help="With --ct: a nodule's centre, 'x,y,z' in voxels (column, row, slice) or 'x,y,z,world' in "
                   "LPS mm (write --at=-80,20,-150,world when the first value is negative); repeat for several "
                   "nodules.")
@click.option("--size", "sizes", multiple=True, help="3D MCGAN: small (<= 10 mm), medium or large (> 20 mm); "
              "one for all --at or one per --at [with --scans: each real nodule's own].")
@click.option("--attenuation", "attenuations", multiple=True,
              help="3D MCGAN: solid, part-solid or ggn; one for all --at or one per --at [with --scans: each real "
                   "nodule's own].")
@click.option("--zoom", type=POSITIVE, default=1.0, show_default=True, help="With --ct: scale the nodule box.")
@click.option("--scans", type=click.Path(path_type=Path), default=None,
              help="3D MCGAN runs: augment this LUNA16-layout folder (scans + annotations.csv) into --out.")
@click.option("--copies", type=COUNT, default=1, show_default=True, help="With --scans: synthetic scans per real one.")
@click.option("--positions", type=click.Choice(["real", "random"]), default="real", show_default=True,
              help="With --scans: replace the real nodules (the paper's protocol) or add nodules at random "
                   "positions inside the lungs. Lesion painter runs: real lesion layouts, jittered, or --per-image "
                   "lesions at random places inside the organ.")
@click.option("--into", type=click.Path(path_type=Path), default=None,
              help="Lesion painter runs: the dataset whose lesion-free slices are painted into [default: the training "
                   "data].")
@click.option("--split", default="train", show_default=True, help="Lesion painter runs: the split of --into.")
@click.option("--per-image", type=COUNT, default=1, show_default=True,
              help="Lesion painter runs with --positions random: lesions painted into each slice.")
@click.option("--lesion-size", default=None,
              help="Lesion painter runs, --positions random: box side in px, MIN-MAX (e.g. 4-8 or 60-80 for sizes "
                   "outside the training range) [default: the real lesions' sizes].")
@click.option("--healthy", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Lesion painter runs: this share of the slices gets healthy tissue painted into "
                   "the same kind of boxes instead of a lesion, labelled the set's other class (the control class "
                   "for augmentation experiments: painted, but no tumour).")
@click.option("--per-scan", type=COUNT, default=1, show_default=True,
              help="With --positions random: nodules added to each scan.")
@click.option("--keep-source-map", type=click.Path(path_type=Path), default=None,
              help="With --ct, --scans or a lesion painter run: also write this JSON file, outside --out, linking each "
                   "synthetic scan or slice to the source it was made from (scans: path, series uid, sha256; slices: "
                   "sample and patient id). It leads back to patients: keep it with the source data and never share "
                   "it; --out itself names no source.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Image i gets seed SEED + i.")
@click.option("--batch", type=COUNT, default=64, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(run, count, out, label, boxes_text, boxes_from, jitter, ct, at, sizes, attenuations, zoom, scans,
             copies, positions, into, split, per_image, lesion_size, healthy, per_scan, keep_source_map, seed, batch,
             overwrite, quiet):
    """Generate with a trained run: N images into a dataset folder (labels, boxes, seeds, provenance); with a
    3D MCGAN run, nodules of a chosen size and attenuation placed into CT scans; with a lesion painter run
    (inpaint2d, diffusion-inpaint), lesions painted into real slices (with their masks)."""
    from pathosynth.data.boxes import parse_boxes
    from pathosynth.generate import generate as generate_with

    boxes = None
    if boxes_text is not None:
        try:
            boxes = parse_boxes(boxes_text)
        except ValueError as exc:
            raise UserError(f"--boxes '{boxes_text}': {exc}; write boxes like 10,12,30,40;5,5,9,9") from exc
    path = generate_with(run, count, out, label=label, boxes=boxes, boxes_from=boxes_from,
                         jitter="" if jitter == "none" else jitter, seed=seed, batch=batch, overwrite=overwrite,
                         progress=not quiet, ct=ct, at=at, sizes=sizes, attenuations=attenuations, zoom=zoom,
                         scans=scans, copies=copies, positions=positions, per_scan=per_scan,
                         source_map=keep_source_map, into=into, split=split, per_image=per_image,
                         lesion_size=_size_range(lesion_size), healthy=healthy)
    click.echo(f"wrote {path}")


def _size_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    low, _, high = text.partition("-")
    try:
        sizes = (int(low), int(high or low))
    except ValueError:
        sizes = (0, 0)
    if not 2 <= sizes[0] <= sizes[1]:
        raise UserError(f"--lesion-size '{text}': write MIN-MAX in px with 2 <= MIN <= MAX, e.g. 10-30")
    return sizes


@cli.group()
def curate():
    """Check synthetic sets: flag near-copies of training images."""


@curate.command(name="audit")
@click.option("--train", "train_dir", type=click.Path(path_type=Path), required=True,
              help="The real dataset folder: its train split is what the GAN saw; held-out splits calibrate.")
@click.option("--synthetic", "synthetic_dir", type=click.Path(path_type=Path), required=True,
              help="Synthetic dataset folder (from `pathosynth generate`); every image is audited.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder to create with audit.json and closest-pairs.png; it appears only when complete.")
@click.option("--features", default="pixel,imagenet", show_default=True,
              help="Feature spaces: pixel (shift- and mirror-tolerant pixels), imagenet (EfficientNet-Lite0).")
@click.option("--held-out-split", default="val,test", show_default=True,
              help="Real splits (other patients) whose nearest-train distances calibrate the thresholds.")
@click.option("--percentile", type=FiniteFloat(0.0, 100.0, low_open=True), default=1.0, show_default=True,
              help="Target share (%) of genuinely new images flagged; split evenly over the feature spaces.")
@click.option("--pixel-size", type=click.IntRange(min=8), default=64, show_default=True,
              help="Side of the pixel-space grid.")
@click.option("--max-shift", type=FiniteFloat(0.0, 0.5), default=0.1, show_default=True,
              help="Pixel space: shifts searched, as a fraction of the image side.")
@click.option("--imagenet-channels", type=click.Choice(["mean", "first"]), default="mean", show_default=True,
              help="Multi-channel images: average the channels' ImageNet features, or use the first channel.")
@click.option("--gallery", type=NON_NEGATIVE_INT, default=16, show_default=True,
              help="Pairs shown in closest-pairs.png.")
@click.option("--batch", type=COUNT, default=64, show_default=True, help="Images read per batch.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def audit(train_dir, synthetic_dir, out, features, held_out_split, percentile, pixel_size, max_shift,
          imagenet_channels, gallery, batch, overwrite, quiet):
    """Memorization audit: flag synthetic images that are near-copies of training images.

    Every synthetic image and every held-out real image gets its nearest training image (mirror
    images included) in each feature space; a synthetic image closer than the held-out images'
    low percentile is flagged. Writes OUT/audit.json and OUT/closest-pairs.png.
    """
    from pathosynth.curate import AuditSettings, audit as run_audit
    from pathosynth.evaluate.features import parse_feature_spaces
    from pathosynth.runtime import configure_torch_threads

    configure_torch_threads()
    settings = AuditSettings(features=parse_feature_spaces(features),
                             held_out_splits=tuple(s.strip() for s in held_out_split.split(",") if s.strip()),
                             percentile=percentile, pixel_size=pixel_size, max_shift=max_shift,
                             imagenet_channels=imagenet_channels, gallery=gallery, batch_size=batch)
    report = run_audit(train_dir, synthetic_dir, out, settings, overwrite=overwrite, progress=not quiet)
    summary = report["summary"]
    cross = summary["held_out_flag_rate_cross_fitted"]
    click.echo(f"near-copies: {summary['synthetic_flagged']} of {summary['synthetic_images']} synthetic images "
               f"({summary['synthetic_flag_rate']:.1%}); held-out real images flagged: "
               f"{summary['held_out_flag_rate']:.1%}"
               + (f" (cross-fitted {cross:.1%})" if cross is not None else "")
               + f", expected for new images: {summary['expected_flag_rate_for_new_images']:.1%}")
    for note in report["notes"]:
        click.echo(f"note: {note}")
    click.echo(f"wrote {out} (audit.json, closest-pairs.png)")


@cli.group()
def evaluate():
    """Measure what synthetic data is worth: downstream experiments and image metrics."""


@evaluate.command(name="classify")
@click.option("--real", "real_dir", type=click.Path(path_type=Path), required=True,
              help="Real 2D two-class dataset folder with patient-level train/val/test splits.")
@click.option("--synthetic", "synthetic_dirs", type=click.Path(path_type=Path), multiple=True,
              help="Synthetic dataset folder (from `pathosynth generate`); repeat for several GANs, each gets its "
                   "rows.")
@click.option("--setups", default="real,classic,gan,classic+gan,synthetic-only", show_default=True,
              help="Comma list of real, classic, gan, classic+gan, synthetic-only.")
@click.option("--pretrained", type=click.Choice(["no", "yes", "both"]), default="no", show_default=True,
              help="Initialise from ImageNet (EfficientNet-Lite0 from the pinned wheel), from scratch, or both.")
@click.option("--preset", type=click.Choice(["paper", "small", "tiny"]), default="small", show_default=True,
              help="paper: ResNet-50 at 224 px as in the papers; small: minutes on a 2-core CPU; tiny: tests.")
@click.option("--repeats", type=COUNT, default=2, show_default=True, help="Trainings per setup (seeds SEED*1000 + r).")
@click.option("--ratio", type=NON_NEGATIVE, default=1.0, show_default=True,
              help="Extra images (classic DA copies or synthetic images) per real training image.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--positive", default=None, help="The positive class [default: the class that is not non-/no-/normal].")
@click.option("--bootstrap", type=click.IntRange(min=100),  default=None,
              help="Patient bootstrap resamples [default: 2000; tiny: 200].")
@click.option("--max-epochs", type=COUNT, default=None, help="Override the preset's epoch limit.")
@click.option("--train-patients", type=COUNT, default=None,
              help="Train every classifier on this many of the real training patients (the low-data regime, where "
                   "augmentation is expected to matter), drawn with --subset-seed; train the GAN with the same two.")
@click.option("--subset-seed", type=SEED, default=0, show_default=True, help="Which patients --train-patients draws.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder to create (built as OUT.partial; an interrupted run resumes from it).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def classify_command(real_dir, synthetic_dirs, setups, pretrained, preset, repeats, ratio, seed, positive, bootstrap,
                     max_epochs, train_patients, subset_seed, out, overwrite, quiet):
    """Train tumour classifiers on real data with and without classic and GAN augmentation (the papers' setups)
    and compare them on the real test split. Primary: ROC AUC, and sensitivity at the specificity the real-only
    model reaches on validation (thresholds fixed on validation); secondary: the 0.5-threshold numbers; with
    patient-bootstrap intervals, paired differences and the smallest difference the test split can detect.
    Ends with one sentence per question that says "not established" unless the data show an effect.
    Writes config.json, results.json, table.md, roc.png and predictions.csv; rerun the same command to
    resume an interrupted run.
    """
    from pathosynth.evaluate.classify import classify
    from pathosynth.evaluate.classify_headline import headline_sentences

    results = classify(real_dir, list(synthetic_dirs), out, setups=setups, pretrained=pretrained, preset=preset,
                       repeats=repeats, ratio=ratio, seed=seed, positive=positive, overwrite=overwrite,
                       progress=not quiet, bootstrap=bootstrap, max_epochs=max_epochs, train_patients=train_patients,
                       subset_seed=subset_seed)
    for note in results["notes"]:
        click.echo(f"note: {note}")
    for sentence in headline_sentences(results):
        click.echo(sentence)
    click.echo(f"wrote {out} (table.md, results.json, roc.png, predictions.csv)")


@evaluate.command(name="images")
@click.option("--real", "real_dir", type=click.Path(path_type=Path), required=True,
              help="Real 2D dataset folder: synthetic sets are compared with its --split; --reference-split "
                   "(other patients) gives the real reference row.")
@click.option("--synthetic", "synthetic_dirs", type=click.Path(path_type=Path), multiple=True, required=True,
              help="Synthetic dataset folder (from `pathosynth generate`); repeat for several sets.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder to create with image-metrics.md and image-metrics.json; it appears only when complete.")
@click.option("--features", default="encoder,radiomics,imagenet", show_default=True,
              help="Feature spaces: encoder (CNN trained on the real labels), radiomics (pyradiomics, Frechet "
                   "Radiomics Distance), imagenet (EfficientNet-Lite0).")
@click.option("--split", default="train", show_default=True, help="Real split the synthetic sets are compared with.")
@click.option("--reference-split", default="val,test", show_default=True,
              help="Real splits (other patients) compared with --split in the reference row.")
@click.option("--max-images", type=click.IntRange(min=2), default=2000, show_default=True,
              help="Images per set (seeded subsample beyond).")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Subsamples, KID subsets, the encoder's training.")
@click.option("--kid-subsets", type=COUNT, default=100, show_default=True)
@click.option("--kid-subset-size", type=click.IntRange(min=2), default=1000, show_default=True,
              help="At most; and at most half the smaller set.")
@click.option("--encoder-epochs", type=COUNT, default=5, show_default=True)
@click.option("--radiomics-size", type=click.IntRange(min=16), default=128, show_default=True,
              help="Radiomics on images resized to the smallest side among the sets, at most this.")
@click.option("--imagenet-channels", default="mean", show_default=True,
              help="Multi-channel images: mean of the channels' ImageNet features, or first.")
@click.option("--batch", type=COUNT, default=64, show_default=True, help="Images read per batch.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def images_command(real_dir, synthetic_dirs, out, features, split, reference_split, max_images, seed, kid_subsets,
                   kid_subset_size, encoder_epochs, radiomics_size, imagenet_channels, batch, overwrite, quiet):
    """Frechet distance, KID, precision and recall of synthetic sets against the real training images, per
    class and over all, in three feature spaces, beside a real reference row (other patients' images
    against the same training images: what 'close' means). Writes OUT/image-metrics.md and .json.
    """
    from pathosynth.evaluate.features import parse_feature_spaces
    from pathosynth.evaluate.images import IMAGE_SPACES, ImageMetricsSettings, evaluate_images, format_table
    from pathosynth.runtime import configure_torch_threads

    configure_torch_threads()
    settings = ImageMetricsSettings(
        features=parse_feature_spaces(features, allowed=IMAGE_SPACES), split=split,
        reference_splits=tuple(s.strip() for s in reference_split.split(",") if s.strip()), max_images=max_images,
        seed=seed, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, encoder_epochs=encoder_epochs,
        radiomics_size=radiomics_size, imagenet_channels=imagenet_channels, batch_size=batch)
    report = evaluate_images(real_dir, list(synthetic_dirs), out, settings, overwrite=overwrite, progress=not quiet)
    for space in report["settings"]["features"]:
        click.echo(f"\n{space}")
        click.echo("\n".join(format_table(report, space)))
    for note in report["notes"]:
        click.echo(f"note: {note}")
    click.echo(f"wrote {out} (image-metrics.md, image-metrics.json)")


@evaluate.command(name="tsne")
@click.option("--real", "real_dir", type=click.Path(path_type=Path), required=True,
              help="Real 2D dataset folder; its --split images are the real points.")
@click.option("--synthetic", "synthetic_dirs", type=click.Path(path_type=Path), multiple=True,
              help="Synthetic dataset folder; repeat for several sets.")
@click.option("--classic-da", is_flag=True,
              help="Add real training images transformed with the papers' classic augmentation.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder to create with tsne-<class>.png, tsne.png, tsne.json and tsne.md; it appears only "
                   "when complete.")
@click.option("--per-class", type=COUNT, default=300, show_default=True, help="Images per category (set) and class.")
@click.option("--perplexity", type=POSITIVE, default=100.0, show_default=True,
              help="Capped at (points - 1) / 3 with a note.")
@click.option("--iterations", type=click.IntRange(min=250), default=1000, show_default=True,
              help="t-SNE iterations (at least 250).")
@click.option("--features", default="pixel", show_default=True,
              help="pixel (64 x 64 images) or encoder (the CNN trained on the real labels).")
@click.option("--split", default="train", show_default=True, help="Real split the real points come from.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Image choice, classic DA, t-SNE's random_state.")
@click.option("--encoder-epochs", type=COUNT, default=5, show_default=True)
@click.option("--batch", type=COUNT, default=64, show_default=True, help="Images read per batch.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def tsne_command(real_dir, synthetic_dirs, classic_da, out, per_class, perplexity, iterations, features, split, seed,
                 encoder_epochs, batch, overwrite, quiet):
    """t-SNE per class of real, classic-DA and synthetic images, as in the papers (300 images per category,
    perplexity 100, 1,000 iterations). Writes one PNG per class, a combined tsne.png and tsne.json.
    """
    from pathosynth.evaluate.tsne import TsneSettings, evaluate_tsne
    from pathosynth.runtime import configure_torch_threads

    configure_torch_threads()
    settings = TsneSettings(per_class=per_class, perplexity=perplexity, iterations=iterations,
                            features=features.strip(), classic_da=classic_da, split=split, seed=seed,
                            encoder_epochs=encoder_epochs, batch_size=batch)
    report = evaluate_tsne(real_dir, list(synthetic_dirs), out, settings, overwrite=overwrite, progress=not quiet)
    for label, embedding in report["embeddings"].items():
        counts = ", ".join(f"{name} {n}" for name, n in embedding["counts"].items())
        click.echo(f"{label}: {counts} (perplexity {embedding['perplexity']:.4g})")
    for note in report["notes"]:
        click.echo(f"note: {note}")
    click.echo(f"wrote {out} (tsne.png, tsne-<class>.png, tsne.json, tsne.md)")


@cli.command(name="report")
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Report folder to create (report.html, report.md, report.json, figures/); it appears only when "
                   "complete.")
@click.option("--title", default="pathosynth report", show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Which images the dataset previews show.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def report_command(folders, out, title, seed, overwrite):
    """One HTML + Markdown report from FOLDERS written by other verbs.

    FOLDERS: datasets (real or synthetic), training runs, `curate audit`, `evaluate classify`,
    `evaluate images` and `evaluate tsne` outputs, in any order. Numbers are read, not recomputed;
    the report opens with a checklist of what was done (patient-level splits, seeds, versions,
    synthetic marking, audit, experiments) in the spirit of CLAIM.
    """
    from pathosynth.report import report

    path = report(list(folders), out, title=title, seed=seed, overwrite=overwrite)
    click.echo(f"wrote {path / 'report.html'} (and report.md, report.json)")


cli.add_command(serve)
cli.add_command(admin)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="pathosynth", standalone_mode=False)
    except UserError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    except (KeyboardInterrupt, click.exceptions.Abort) as interruption:
        # click turns Ctrl-C into Abort; the interruption's own message (e.g. how to resume) is its cause
        cause = interruption.__cause__ if isinstance(interruption, click.exceptions.Abort) else interruption
        click.echo(str(cause or "") or "interrupted; nothing half-written was left behind", err=True)
        sys.exit(130)
    except click.UsageError as error:  # a bad option or value: one line, like every other user error
        command = error.ctx.command_path if error.ctx else "pathosynth"
        click.echo(f"error: {command}: {error.format_message().rstrip('.')}; see `{command} --help`", err=True)
        sys.exit(error.exit_code)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)


if __name__ == "__main__":
    main()
