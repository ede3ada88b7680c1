"""Generation: conditions in, images with their labels, boxes, seeds and provenance out.

`generate` handles every family, as its declaration says (`Family.generation`): a 2D image run
writes N images into a dataset folder (`images.py`); a 3D MCGAN run places nodules of a chosen
size and attenuation into CT scans (`nodules.py`, through the inpainter of `inpaint.py` and the
geometry of `placement/`); a 2D lesion inpainter paints lesions into real slices (`lesions.py`).
`teaching.py` makes teaching cases on demand for the reader app. Every one of them reads a run
through `contracts.read_run` and loads its generators in one place (`images.load_generators`,
`inpaint.load_inpainter`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pathosynth.contracts import read_run
from pathosynth.errors import UserError


def generate(run: str | Path, n: int | None, out: str | Path, *, label: str | None = None,
             boxes: list[list[float]] | None = None, boxes_from: str | Path | None = None,
             jitter: str | None = None, seed: int = 0, batch: int = 64, overwrite: bool = False,
             progress: bool = True, ct: str | Path | None = None, at: Sequence[str] = (),
             sizes: Sequence[str] = (), attenuations: Sequence[str] = (), zoom: float = 1.0,
             scans: str | Path | None = None, copies: int = 1, positions: str = "real",
             per_scan: int = 1, source_map: str | Path | None = None, into: str | Path | None = None,
             split: str = "train", per_image: int = 1, lesion_size: tuple[int, int] | None = None,
             healthy: float = 0.0) -> Path:
    """Generate with the trained run in `run` into `out`; returns `out`.

    2D runs: `n` images (`label`, `boxes`, `boxes_from`, `jitter`, `batch`; see `images.generate_images`).
    3D MCGAN runs: nodules placed into `ct` at `at` with `sizes` and `attenuations`, or into every scan
    of the LUNA16-layout folder `scans` (`copies`, `positions`, `per_scan`, `jitter` as shift/zoom);
    2D lesion inpainters: `n` slices of `into` (`split`) with lesions painted in at `boxes`, real
    layouts (`boxes_from`, `jitter`) or `positions` "random" (`per_image`, `lesion_size`), a `healthy`
    share repainted without lesions (the control class); see `lesions.paint_lesions`.
    `source_map` keeps the source -> synthetic table (it names real scans: keep it apart).
    """
    from pathosynth.models import family

    kind = family(read_run(Path(run)).model).generation
    if kind == "lesions":
        if ct or scans or at or sizes or attenuations:
            raise UserError(f"{run} paints 2D lesions into slices: --ct, --scans, --at, --size and --attenuation "
                            "are for 3D MCGAN runs")
        if n is None:
            raise UserError("give --n, the number of slices to paint lesions into")
        from pathosynth.generate.lesions import paint_lesions

        return paint_lesions(run, n, out, into=into, split=split, label=label, boxes=boxes, boxes_from=boxes_from,
                             jitter=jitter, positions=positions, per_image=per_image, lesion_size=lesion_size,
                             healthy=healthy, seed=seed, batch=batch, overwrite=overwrite, progress=progress,
                             source_map=source_map)
    if into or per_image != 1 or lesion_size or healthy:
        raise UserError(f"{run} does not paint lesions into slices: --into, --per-image, --lesion-size and --healthy "
                        "are for "
                        "`--model inpaint2d` runs")
    if kind == "nodules":
        return _nodules(run, n, out, ct=ct, at=at, sizes=sizes, attenuations=attenuations, zoom=zoom, scans=scans,
                        copies=copies, positions=positions, per_scan=per_scan, jitter=jitter, source_map=source_map,
                        seed=seed, overwrite=overwrite, progress=progress)
    if ct or scans or at or sizes or attenuations or source_map:
        raise UserError(f"{run} is not a 3D MCGAN run: --ct, --scans, --at, --size, --attenuation and "
                        "--keep-source-map place nodules with `pathosynth train --model mcgan3d` runs")
    if n is None:
        raise UserError("give --n, the number of images to generate")
    from pathosynth.generate.images import generate_images

    return generate_images(run, n, out, label=label, boxes=boxes, boxes_from=boxes_from, jitter=jitter, seed=seed,
                           batch=batch, overwrite=overwrite, progress=progress)


def _nodules(run, n, out, *, ct, at, sizes, attenuations, zoom, scans, copies, positions, per_scan, jitter,
             source_map, seed, overwrite, progress) -> Path:
    from pathosynth.generate.images import Jitter
    from pathosynth.generate.nodules import augment_scans, place_nodules

    if n is not None:
        raise UserError(f"{run} is a 3D MCGAN run: it places nodules into scans (--ct or --scans), not --n images")
    if bool(ct) == bool(scans):
        raise UserError(f"{run} is a 3D MCGAN run: give --ct FILE with --at positions, or --scans DIR to augment "
                        "a LUNA16-layout folder")
    if ct:
        if not sizes or not attenuations:
            raise UserError("with --ct, give --size (small, medium, large) and --attenuation (solid, part-solid, ggn)")
        return place_nodules(run, ct, out, at=list(at), sizes=list(sizes), attenuations=list(attenuations),
                             zoom=zoom, seed=seed, overwrite=overwrite, progress=progress, source_map=source_map)
    if at:
        raise UserError("--at goes with --ct; with --scans the positions are the real nodules' or random ones")
    if len(sizes) > 1 or len(attenuations) > 1:
        raise UserError("with --scans, give at most one --size and one --attenuation (for every nodule)")
    moves = Jitter.parse("shift=0.1,zoom=0.1" if jitter is None else jitter)
    if moves.flip:
        raise UserError("--jitter flip does not apply to nodule positions; use shift=F,zoom=F")
    return augment_scans(run, scans, out, copies=copies, positions=positions, size=sizes[0] if sizes else None,
                         attenuation=attenuations[0] if attenuations else None, per_scan=per_scan,
                         shift=moves.shift, zoom=moves.zoom, seed=seed, overwrite=overwrite, progress=progress,
                         source_map=source_map)
