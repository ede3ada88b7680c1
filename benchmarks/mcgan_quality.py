"""Does 3D MCGAN make the nodule it was asked for? Conditioning and diversity on the chest-CT phantom.

Judges, each checked on real nodules first:
- a small 3D CNN (MONAI `Classifier`, two 3-way heads: size class and attenuation class) trained on
  the real training split's central nodule boxes, with flips, or with `--judge-vois` on every nodule
  of another VOI dataset (e.g. a larger phantom of other patients: `pathosynth data phantom chest-ct
  --patients 200 --seed 7`), which makes a surer judge; its accuracy on the real val+test nodules is
  the ceiling a generator can show;
- size only, without learning: the diameter from the radial profile at the box centre
  (`pathosynth.generate.nodules.measure_diameter`), put in its class (<= 10, <= 20, > 20 mm).

Generated: every real val+test VOI's surroundings, inpainted once for each of the nine
size x attenuation conditions (seed = VOI number). Bar (issue 5): the requested size class and the
requested attenuation class are each recognised in >= 80% of generated nodules. Reported two ways:
with each surroundings' own nodule's classes (the paper's augmentation protocol, so the conditions
follow the data), and over all nine conditions alike (atypical combinations, rare in training,
weigh as much as common ones).

Diversity: for one condition and one surroundings, the RMS (HU) between nodules of 8 seeds; and
each generated box's distance to its nearest real training box, beside the same distance for the
real val+test boxes (a generator that copies training nodules sits far below that reference).

Usage: python benchmarks/mcgan_quality.py --vois DIR --run RUN [--judge-vois DIR] [--threads 2] [--epochs 40]
                                          [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SIZE_EDGES_MM = (10.0, 20.0)


def _boxes(dataset, samples, box: int) -> tuple[np.ndarray, np.ndarray]:
    """Central box^3 blocks in HU (N, box, box, box) and the VOIs (N, S, S, S)."""
    vois = np.stack([dataset.read(s)[0] for s in samples]).astype(np.float32)
    side = vois.shape[-1]
    low = side // 2 - box // 2
    return vois[:, low:low + box, low:low + box, low:low + box], vois


def _labels(samples) -> tuple[np.ndarray, np.ndarray]:
    from pathosynth.data.nodules import ATTENUATIONS, SIZES

    return (np.array([SIZES.index(s.attributes["size"]) for s in samples]),
            np.array([ATTENUATIONS.index(s.attributes["attenuation"]) for s in samples]))


def _tensor(blocks_hu: np.ndarray) -> torch.Tensor:
    from pathosynth.training.vois import HU_WINDOW, VOI_INTENSITY

    return VOI_INTENSITY.normalise(torch.from_numpy(np.clip(blocks_hu, *HU_WINDOW)))[:, None]


def train_judge(blocks: np.ndarray, sizes: np.ndarray, attenuations: np.ndarray, epochs: int, seed: int):
    from monai.networks.nets import Classifier

    torch.manual_seed(seed)
    side = blocks.shape[-1]
    model = Classifier(in_shape=(1, side, side, side), classes=6, channels=(8, 16, 32), strides=(2, 2, 2),
                       num_res_units=1)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    x = _tensor(blocks)
    y_size, y_att = torch.from_numpy(sizes), torch.from_numpy(attenuations)
    # balance the classes: the phantom has far more small solid nodules than large ggn ones
    weights = [torch.tensor(len(y) / (3 * np.maximum(np.bincount(y.numpy(), minlength=3), 1)), dtype=torch.float32)
               for y in (y_size, y_att)]
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for start in range(0, len(x), 16):
            index = order[start:start + 16]
            batch = x[index]
            for axis in (-1, -2, -3):  # flips: nodules have no handedness
                flip = torch.rand(len(batch)) < 0.5
                batch = torch.where(flip[:, None, None, None, None], batch.flip(axis), batch)
            logits = model(batch)
            loss = (F.cross_entropy(logits[:, :3], y_size[index], weight=weights[0])
                    + F.cross_entropy(logits[:, 3:], y_att[index], weight=weights[1]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


@torch.no_grad()
def judge(model, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = torch.cat([model(chunk) for chunk in _tensor(blocks).split(32)])
    return logits[:, :3].argmax(1).numpy(), logits[:, 3:].argmax(1).numpy()


def size_by_diameter(blocks: np.ndarray, spacing_mm: float) -> np.ndarray:
    from pathosynth.generate.nodules import measure_diameter

    classes = []
    for block in blocks:
        diameter = measure_diameter(block, spacing_mm)
        classes.append(-1 if diameter is None else int(np.searchsorted(SIZE_EDGES_MM, diameter, side="left")))
    return np.array(classes)


def _rms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a - b) ** 2).reshape(len(a), -1).mean(1))


def nearest_rms(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    q = queries.reshape(len(queries), -1).astype(np.float64)
    r = references.reshape(len(references), -1).astype(np.float64)
    squared = (q ** 2).sum(1)[:, None] + (r ** 2).sum(1)[None] - 2 * q @ r.T
    return np.sqrt(np.maximum(squared.min(1), 0) / q.shape[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--vois", required=True, help="nodule-VOI dataset (pathosynth data phantom chest-ct)")
    parser.add_argument("--run", required=True, help="3D MCGAN run folder")
    parser.add_argument("--judge-vois", help="train the 3D CNN judge on every nodule of this VOI dataset instead "
                                             "(other patients than --vois)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=40, help="judge training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    from pathosynth.data.dataset import Dataset
    from pathosynth.generate.inpaint import load_inpainter
    from pathosynth.data.nodules import ATTENUATIONS, SIZES
    from pathosynth.runtime import configure_torch_threads

    configure_torch_threads(args.threads)
    seconds = {}
    start = time.perf_counter()
    inpainter = load_inpainter(args.run, torch.device("cpu"))
    if inpainter.spacing_mm != 1.0 or inpainter.voi_size != 64:
        print(f"note: the run works on {inpainter.voi_size}^3 VOIs of {inpainter.spacing_mm} mm", file=sys.stderr)
    dataset = Dataset.load(args.vois)
    train = dataset.select(split="train")
    held = dataset.select(split="val") + dataset.select(split="test")
    box_mm = inpainter.box * inpainter.spacing_mm
    real_box = int(round(box_mm / (dataset.info.spacing or [1.0])[0]))
    train_blocks, _ = _boxes(dataset, train, real_box)
    held_blocks, held_vois = _boxes(dataset, held, real_box)
    train_size, train_att = _labels(train)
    held_size, held_att = _labels(held)
    seconds["load"] = time.perf_counter() - start

    start = time.perf_counter()
    judge_blocks, judge_size, judge_att = train_blocks, train_size, train_att
    if args.judge_vois:
        other = Dataset.load(args.judge_vois)
        overlap = {s.patient_id for s in other.samples} & {s.patient_id for s in dataset.samples}
        if overlap:
            parser.error(f"--judge-vois shares {len(overlap)} patient id(s) with --vois; use other patients")
        judge_blocks, _ = _boxes(other, other.samples, real_box)
        judge_size, judge_att = _labels(other.samples)
    model = train_judge(judge_blocks, judge_size, judge_att, args.epochs, args.seed)
    real_size, real_att = judge(model, held_blocks)
    real_diameter_size = size_by_diameter(held_blocks, 1.0)
    seconds["judge"] = time.perf_counter() - start

    # Every held-out surroundings x every condition, at the run's own VOI grid.
    start = time.perf_counter()
    factor = held_vois.shape[-1] // inpainter.voi_size
    contexts = held_vois if factor == 1 else held_vois.reshape(
        len(held_vois), inpainter.voi_size, factor, inpainter.voi_size, factor, inpainter.voi_size,
        factor).mean((2, 4, 6))
    wanted, made = [], []
    for number, context in enumerate(contexts):
        for s, size in enumerate(SIZES):
            for a, attenuation in enumerate(ATTENUATIONS):
                block = inpainter(context, size, attenuation, seed=number)
                if factor > 1:  # back to the judge's 1 mm grid
                    block = np.kron(block, np.ones((factor,) * 3, np.float32))
                made.append(block)
                wanted.append((s, a))
    made = np.stack(made)
    wanted = np.array(wanted)
    own = np.array([(s, a) == (held_size[i], held_att[i]) for i in range(len(contexts))
                    for s in range(len(SIZES)) for a in range(len(ATTENUATIONS))])
    seconds["generate"] = time.perf_counter() - start
    seconds["per_nodule"] = seconds["generate"] / len(made)
    gen_size, gen_att = judge(model, made)
    gen_diameter_size = size_by_diameter(made, 1.0)

    # Diversity: 8 seeds of one condition on the first held-out surroundings, per condition.
    spread = {}
    for s, size in enumerate(SIZES):
        for a, attenuation in enumerate(ATTENUATIONS):
            seeds = np.stack([inpainter(contexts[0], size, attenuation, seed=1000 + k) for k in range(8)])
            pairs = [(i, j) for i in range(8) for j in range(i + 1, 8)]
            spread[f"{size}/{attenuation}"] = float(np.mean([_rms(seeds[i:i + 1], seeds[j:j + 1])[0]
                                                             for i, j in pairs]))
    gen_nearest = nearest_rms(made, train_blocks)
    real_nearest = nearest_rms(held_blocks, train_blocks)

    def pct(mask) -> float:
        return float(100 * np.mean(mask))

    per_condition = []
    for s, size in enumerate(SIZES):
        for a, attenuation in enumerate(ATTENUATIONS):
            rows = (wanted[:, 0] == s) & (wanted[:, 1] == a)
            per_condition.append({"size": size, "attenuation": attenuation, "n": int(rows.sum()),
                                  "train_n": int(((train_size == s) & (train_att == a)).sum()),
                                  "size_ok": pct(gen_size[rows] == s), "attenuation_ok": pct(gen_att[rows] == a),
                                  "size_by_diameter_ok": pct(gen_diameter_size[rows] == s),
                                  "spread_rms_hu": spread[f"{size}/{attenuation}"]})
    result = {
        "run": str(Path(args.run).resolve()), "checkpoint_sha256": inpainter.sha256, "step": inpainter.step,
        "train_vois": len(train), "held_vois": len(held), "generated_n": len(made),
        "judge_trained_on": args.judge_vois or "the --vois training split", "judge_vois": len(judge_blocks),
        "judge_on_real": {"size": pct(real_size == held_size), "attenuation": pct(real_att == held_att),
                          "size_by_diameter": pct(real_diameter_size == held_size)},
        "generated": {"size": pct(gen_size == wanted[:, 0]), "attenuation": pct(gen_att == wanted[:, 1]),
                      "both": pct((gen_size == wanted[:, 0]) & (gen_att == wanted[:, 1])),
                      "size_by_diameter": pct(gen_diameter_size == wanted[:, 0])},
        "generated_own_classes": {"n": int(own.sum()), "size": pct((gen_size == wanted[:, 0])[own]),
                                  "attenuation": pct((gen_att == wanted[:, 1])[own]),
                                  "both": pct(((gen_size == wanted[:, 0]) & (gen_att == wanted[:, 1]))[own]),
                                  "size_by_diameter": pct((gen_diameter_size == wanted[:, 0])[own])},
        "per_condition": per_condition,
        "nearest_training_box_rms_hu": {"generated_median": float(np.median(gen_nearest)),
                                        "real_held_out_median": float(np.median(real_nearest)),
                                        "generated_min": float(gen_nearest.min()),
                                        "real_held_out_min": float(real_nearest.min())},
        "seconds": seconds, "threads": torch.get_num_threads(),
    }
    judge_real, gen, own_gen = result["judge_on_real"], result["generated"], result["generated_own_classes"]
    print(f"3D MCGAN conditioning, run {args.run} (step {inpainter.step}); {len(train)} training / {len(held)} "
          f"held-out real nodules; {len(made)} generated (every held-out surroundings x 9 conditions)\n")
    print("| judge | on real held-out nodules | generated, each surroundings' own classes | bar | "
          "generated, all nine conditions alike | bar |")
    print("| --- | ---: | ---: | --- | ---: | --- |")

    def verdict(value: float) -> str:
        return ("PASS" if value >= 80 else "FAIL") + " (>= 80%)"

    for key, name in (("size", "size class (3D CNN)"), ("attenuation", "attenuation class (3D CNN)"),
                      ("size_by_diameter", "size class (measured diameter)")):
        print(f"| {name} | {judge_real[key]:.0f}% | {own_gen[key]:.0f}% | {verdict(own_gen[key])} | "
              f"{gen[key]:.0f}% | {verdict(gen[key])} |")
    print(f"| both (3D CNN) | | {own_gen['both']:.0f}% | | {gen['both']:.0f}% | |\n")
    print("| condition | training nodules | size ok | attenuation ok | size ok (diameter) "
          "| spread of 8 seeds (RMS HU) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in per_condition:
        print(f"| {row['size']} {row['attenuation']} | {row['train_n']} | {row['size_ok']:.0f}% | "
              f"{row['attenuation_ok']:.0f}% | {row['size_by_diameter_ok']:.0f}% | {row['spread_rms_hu']:.0f} |")
    near = result["nearest_training_box_rms_hu"]
    print(f"\nNearest real training nodule box (RMS HU, median / min): generated {near['generated_median']:.0f} / "
          f"{near['generated_min']:.0f}; real held-out {near['real_held_out_median']:.0f} / "
          f"{near['real_held_out_min']:.0f} (generated far below the real reference would mean copying)")
    print("seconds: " + ", ".join(f"{k} {v:.3g}" for k, v in seconds.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
