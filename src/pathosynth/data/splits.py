"""Patient-level splits: seeded ratios or explicit lists, and the leakage check."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pathosynth.data.paths import kind_of
from pathosynth.data.tables import decode_text, read_table
from pathosynth.errors import UserError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitPlan:
    """How patients are assigned to splits: ratios drawn with a seed, or an explicit table."""

    ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    explicit: dict[str, str] | None = None

    def describe(self) -> dict:
        if self.explicit is not None:
            return {"explicit": True, "patients": len(self.explicit)}
        return {"ratios": list(self.ratios), "seed": self.seed}


def parse_ratios(text: str) -> tuple[float, float, float]:
    """``"0.7,0.15,0.15"`` (train, val, test); they are normalised to sum to 1."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or any(v < 0 for v in values) or sum(values) <= 0 or values[0] <= 0:
        raise UserError(f"--split '{text}' is not three non-negative ratios train,val,test "
                        "with train > 0; write it like 0.7,0.15,0.15")
    total = sum(values)
    return tuple(v / total for v in values)  # type: ignore[return-value]


def read_split_file(path: str | Path) -> dict[str, str]:
    """A CSV with columns patient_id,split, or JSON {"train": [...], "val": [...], "test": [...]}."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        pairs = [(patient, split, str(path)) for patient, split in _json_split_pairs(path)]
    else:
        rows = read_table(path, ("patient_id", "split"), what="split file",
                          where_to_give="give a CSV (patient_id,split) or a JSON file")
        pairs = [(row["patient_id"], row["split"], rows.where(line)) for line, row in rows.rows]
    split_of: dict[str, str] = {}
    for patient, split, where in pairs:
        if not patient:
            raise UserError(f"{where}: a row has no patient_id; fill it in or drop the row")
        if split not in SPLITS:
            raise UserError(f"{where}: patient {patient} has unknown split '{split}'; use train, val or test")
        if split_of.get(patient, split) != split:
            raise UserError(f"{where}: patient {patient} is listed in two splits; keep one")
        split_of[patient] = split
    return split_of


def _json_split_pairs(path: Path) -> list[tuple[str, str]]:
    if kind_of(path) != "file":
        raise UserError(f"{path}: split file not found; give a CSV (patient_id,split) or a JSON file")
    try:
        data = json.loads(decode_text(path)[0])
        if not all(isinstance(ids, list) for ids in data.values()):
            raise ValueError("each split needs a list of patient ids")  # a bare "P1" would read as P and 1
        return [(str(p), s) for s, ids in data.items() for p in ids]
    except (ValueError, AttributeError, TypeError) as exc:
        raise UserError(f"{path}: cannot read the split table ({exc}); write JSON like "
                        '{"train": ["P1"], "test": ["P2"]}') from exc


def assign_splits(patient_ids: list[str], plan: SplitPlan) -> dict[str, str]:
    """Map every patient to a split. Ratio splits are a seeded shuffle of the sorted ids."""
    patients = sorted(set(patient_ids))
    if plan.explicit is not None:
        missing = [p for p in patients if p not in plan.explicit]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise UserError(f"the split file does not list {len(missing)} patient(s): {shown}; "
                            "add them to it")
        return {p: plan.explicit[p] for p in patients}
    order = np.random.default_rng(plan.seed).permutation(len(patients))
    counts = _split_counts(len(patients), plan.ratios)
    assignment = {}
    cursor = 0
    for split, count in zip(SPLITS, counts):
        for index in order[cursor:cursor + count]:
            assignment[patients[index]] = split
        cursor += count
    return assignment


def _split_counts(n: int, ratios: tuple[float, float, float]) -> list[int]:
    """Largest-remainder rounding; every split with a positive ratio gets a patient when n allows."""
    raw = np.asarray(ratios) * n
    counts = np.floor(raw).astype(int)
    for index in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[index] += 1
    for index in range(3):
        donor = int(np.argmax(counts))
        if ratios[index] > 0 and counts[index] == 0 and counts[donor] > 1:
            counts[donor] -= 1
            counts[index] += 1
    return counts.tolist()


def check_patient_splits(rows: list[dict], source: str = "the manifest") -> None:
    """Fail loudly when one patient's samples sit in two splits."""
    splits_of: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        splits_of[str(row["patient_id"])].add(str(row["split"]))
    leaking = {p: sorted(s) for p, s in splits_of.items() if len(s) > 1}
    if leaking:
        shown = "; ".join(f"{p} in {', '.join(s)}" for p, s in sorted(leaking.items())[:5])
        raise UserError(f"{source}: {len(leaking)} patient(s) appear in more than one split ({shown}); "
                        "re-split by patient so each patient is in one split only")


def patient_subset(patient_ids, count: int, seed: int, where: str) -> set[str]:
    """`count` of these patients, drawn with `seed`: the low-data regime (METHODS section 10).

    A seeded permutation of the sorted ids, so that the classifier experiment and the GAN trained
    for it get the same patients from the same (count, seed), and a smaller count's patients are
    among a larger one's."""
    patients = sorted(set(patient_ids))
    if not 1 <= count <= len(patients):
        raise UserError(f"{where}: --train-patients {count}, but the training split has {len(patients)} patients; "
                        f"choose 1 to {len(patients)}")
    order = np.random.default_rng([seed, len(patients)]).permutation(len(patients))
    return {patients[i] for i in order[:count]}
