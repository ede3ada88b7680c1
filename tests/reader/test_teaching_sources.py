"""Teaching cases from a pool of synthetic images, and the typical/atypical rule (no torch here)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pathosynth.data.dataset import DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage
from pathosynth.data.splits import SplitPlan
from pathosynth.errors import UserError
from pathosynth.reader.teaching_sources import (TYPICAL_RULE, CaseFacts, CaseMaker, PoolMaker, TeachingRequest,
                                                atypical_reasons, box_iou, box_measures, draw_atypical_box,
                                                reference_from_dataset, reference_from_facts)

CLASSES = ["non-tumour", "rare", "tumour"]
SHA = "ab" * 32

# The pool: 16x16 synthetic images. p00..p09 are placed for the matching tests; t0.. are halved
# copies of reference boxes (typical unless the copied box itself lies at the reference's edge).
POOL = [
    ("p00", "tumour", [[3, 3, 9, 9]], "small"),
    ("p01", "tumour", [[2, 2, 6, 6]], "small"),
    ("p02", "tumour", [[0, 0, 16, 16]], "medium"),
    ("p03", "tumour", [[10, 10, 14, 14]], "small"),
    ("p04", "tumour", [[10, 10, 14, 14]], "small"),
    ("p05", "tumour", [[7, 7, 9, 9]], "large"),
    ("p06", "non-tumour", [], "small"),
    ("p07", "non-tumour", [], "medium"),
    ("p08", "rare", [[6, 6, 10, 10]], "small"),
    ("p09", "tumour", [[0, 12, 3, 15]], "small"),
]


def _reference_rows():
    """20 real 32x32 samples: 17 tumour, 2 non-tumour (10%: not rare), 1 rare; sizes 12 small, 7 medium,
    1 large."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(20):
        label = "tumour" if i < 17 else "non-tumour" if i < 19 else "rare"
        size = "small" if i < 12 else "medium" if i < 19 else "large"
        boxes = []
        if label != "non-tumour":
            w, h = (int(v) for v in rng.integers(4, 9, size=2))
            cx, cy = (int(v) for v in rng.integers(12, 21, size=2))
            boxes = [[cx - w // 2, cy - h // 2, cx - w // 2 + w, cy - h // 2 + h]]
        rows.append((f"r{i:02d}", label, boxes, size))
    return rows


def _write(out, rows, side, synthetic):
    info = DatasetInfo(name=out.name, modality="MR", dimensionality=2, classes=CLASSES,
                       attributes={"size": ["small", "medium", "large"]},
                       source={"synthetic": True} if synthetic else {})
    with DatasetWriter(out, info) as writer:
        for number, (sample_id, label, boxes, size) in enumerate(rows):
            provenance = ({"model": "dcgan", "checkpoint_sha256": SHA, "seed": number,
                           "condition": {"label": label, "boxes": boxes}} if synthetic else None)
            pixels = np.full((side, side), 100 + number, dtype=np.uint16)  # each image its own value
            writer.add(Sample(id=sample_id, patient_id=sample_id, image="", label=label, split="train", boxes=boxes,
                              attributes={"size": size}, synthetic=provenance),
                       MedicalImage(pixels, (1.0, 1.0)))
        return writer.commit(SplitPlan())


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("teaching")
    reference_rows = _reference_rows()
    typical_copies = [(f"t{i}", "tumour", [[v / 2 for v in row[2][0]]], "small")
                      for i, row in enumerate(reference_rows[:6])]
    pool_rows = POOL + typical_copies
    return {"reference": _write(root / "reference", reference_rows, 32, synthetic=False),
            "pool": _write(root / "pool", pool_rows, 16, synthetic=True),
            "reference_rows": reference_rows, "pool_rows": pool_rows}


@pytest.fixture(scope="module")
def maker(folders):
    return PoolMaker(folders["pool"], reference=folders["reference"])


# ------------------------------------------------------------------------ the rule, by hand

def _hand_reference(rows):
    """Shares and 10-90th percentile ranges computed here, independently of the module."""
    boxes = np.array([row[2][0] for row in rows if row[2]], float) / 32  # square images: fractions directly
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    labels = [row[1] for row in rows]
    sizes = [row[3] for row in rows]
    return {"area": np.percentile(areas, [10, 90]), "cx": np.percentile(centres[:, 0], [10, 90]),
            "cy": np.percentile(centres[:, 1], [10, 90]),
            "label": {k: labels.count(k) / len(labels) for k in CLASSES},
            "size": {k: sizes.count(k) / len(sizes) for k in set(sizes)}}


def _hand_atypical(hand, label, boxes, size, side=16):
    if hand["label"].get(label, 0) < 0.1 or hand["size"].get(size, 0) < 0.1:
        return True
    for x0, y0, x1, y1 in boxes:
        area = (x1 - x0) * (y1 - y0) / side ** 2
        cx, cy = (x0 + x1) / 2 / side, (y0 + y1) / 2 / side
        for value, (low, high) in ((area, hand["area"]), (cx, hand["cx"]), (cy, hand["cy"])):
            if value < low or value > high:
                return True
    return False


def test_the_rule_uses_the_10th_and_90th_percentiles_of_the_reference_boxes(folders):
    hand = _hand_reference(folders["reference_rows"])
    reference = reference_from_dataset(folders["reference"])
    np.testing.assert_allclose(reference.area_range(), hand["area"])
    np.testing.assert_allclose(reference.centre_range(), [hand["cx"], hand["cy"]])
    assert reference.label_share["rare"] == pytest.approx(0.05) and reference.attribute_share["size"]["large"] == 0.05
    for sample_id, label, boxes, size in folders["pool_rows"]:
        reasons = atypical_reasons(reference, CaseFacts(label, boxes, {"size": size}, (16, 16)))
        assert bool(reasons) == _hand_atypical(hand, label, boxes, size), (sample_id, reasons)


def test_each_reason_names_what_made_the_case_atypical(folders):
    reference = reference_from_dataset(folders["reference"])
    low, high = reference.area_range()
    assert atypical_reasons(reference, CaseFacts("rare", [], {}, (16, 16))) == \
        ["class 'rare' is rare: 5% of the reference samples"]
    assert atypical_reasons(reference, CaseFacts("tumour", [], {"size": "large"}, (16, 16))) == \
        ["size 'large' is rare: 5% of the reference samples"]
    tiny = atypical_reasons(reference, CaseFacts("tumour", [[8, 8, 8.1, 8.1]], {}, (16, 16)))
    assert len(tiny) == 1 and "below the reference's 10th percentile" in tiny[0] and f"{low:.2%}" in tiny[0]
    corner = atypical_reasons(reference, CaseFacts("non-tumour", [[0, 0, 4, 4]], {}, (16, 16)))
    assert any(r.startswith("box centre x") for r in corner) and any(r.startswith("box centre y") for r in corner)
    huge = atypical_reasons(reference, CaseFacts("tumour", [[0, 0, 16, 16]], {}, (16, 16)))
    assert any("above the reference's 90th percentile" in r and f"{high:.2%}" in r for r in huge)
    # exactly 10% is not rare: the non-tumour class has 2 of 20
    assert atypical_reasons(reference, CaseFacts("non-tumour", [], {"size": "medium"}, (16, 16))) == []


def test_the_joint_attribute_rule_flags_a_rare_combination_of_common_values():
    pairs = [("small", "solid")] * 9 + [("medium", "ggn")] * 9 + [("small", "ggn"), ("medium", "solid")]
    facts = [CaseFacts("nodule", [], {"size": s, "attenuation": a}, (8, 8, 8)) for s, a in pairs]
    reference = reference_from_facts(facts, "vois", use_boxes=False)
    reasons = atypical_reasons(reference, CaseFacts("nodule", [], {"size": "small", "attenuation": "ggn"}, (8, 8, 8)))
    assert reasons == ["the combination size=small, attenuation=ggn is rare: 5% of the reference samples"]
    common = CaseFacts("nodule", [], {"size": "small", "attenuation": "solid"}, (8, 8, 8))
    assert atypical_reasons(reference, common) == []


def test_box_measures_work_in_the_square_padded_frame():
    # a 24-row x 32-column image is padded by 4 rows at the top, as training pads it to 32x32
    area, centre = box_measures([8, 0, 16, 8], (24, 32))
    assert area == pytest.approx(64 / 1024)
    np.testing.assert_allclose(centre, [12 / 32, (4 + 4) / 32])
    area3, centre3 = box_measures([0, 0, 0, 2, 4, 8], (8, 8, 8))
    assert area3 == pytest.approx(64 / 512) and list(centre3) == [1 / 8, 2 / 8, 4 / 8]


def test_box_iou_matches_a_hand_computation():
    assert box_iou([2, 2, 8, 8], [3, 3, 9, 9]) == pytest.approx(25 / 47)
    assert box_iou([0, 0, 2, 2], [2, 2, 4, 4]) == 0.0
    assert box_iou([0, 0, 0, 2, 2, 2], [1, 1, 1, 3, 3, 3]) == pytest.approx(1 / 15)


def test_atypical_boxes_drawn_for_quizzes_break_the_box_rule_and_stay_inside(folders):
    hand = _hand_reference(folders["reference_rows"])
    reference = reference_from_dataset(folders["reference"])
    rng = np.random.default_rng(1)
    for _ in range(30):
        box = draw_atypical_box(reference, (16, 16), rng)
        assert 0 <= box[0] < box[2] <= 16 and 0 <= box[1] < box[3] <= 16
        assert _hand_atypical(hand, "tumour", [box], "small")
    few = reference_from_facts([CaseFacts("tumour", [[1, 1, 3, 3]], {}, (16, 16))] * 4, "four boxes")
    with pytest.raises(UserError, match="fewer than 5 lesion boxes"):
        draw_atypical_box(few, (16, 16), rng)


# ------------------------------------------------------------------------------ the pool

def test_the_pool_describes_itself_as_json(maker, folders):
    assert isinstance(maker, CaseMaker)
    description = json.loads(json.dumps(maker.describe()))
    assert description["classes"] == CLASSES and description["dimensionality"] == 2
    assert description["accepts_box"] is True and description["attributes"] == {"size": ["small", "medium", "large"]}
    assert description["image_size"] == [16, 16] and description["typical_rule"] == TYPICAL_RULE
    assert description["reference"]["source"] == str(folders["reference"])
    hand = _hand_reference(folders["reference_rows"])
    atypical = sum(_hand_atypical(hand, label, boxes, size) for _, label, boxes, size in folders["pool_rows"])
    assert description["atypical_cases"] == atypical and 0 < atypical < len(folders["pool_rows"])


def test_a_request_by_label_returns_a_seeded_sample_of_that_label(maker):
    ids = set()
    for seed in range(12):
        case = maker.make(TeachingRequest(label="non-tumour", seed=seed))
        assert case.label == "non-tumour" and case.provenance["source"] == "pool"
        again = maker.make(TeachingRequest(label="non-tumour", seed=seed))
        assert again.provenance["sample_id"] == case.provenance["sample_id"]
        assert np.array_equal(again.array, case.array) and case.array.dtype == np.float32
        assert case.array.shape == (1, 16, 16) and case.provenance["checkpoint_sha256"] == SHA
        metadata = json.loads(json.dumps(case.metadata()))  # what the app stores beside the rendered image
        assert "array" not in metadata and metadata["provenance"]["sample_provenance"]["model"] == "dcgan"
        ids.add(case.provenance["sample_id"])
    assert ids == {"p06", "p07"}  # both drawn, by the seed


def test_a_box_request_returns_the_sample_whose_box_overlaps_it_most(maker, folders):
    request_box = [2, 2, 8, 8]

    def hand_iou(box):
        ix = max(0, min(box[2], 8) - max(box[0], 2))
        iy = max(0, min(box[3], 8) - max(box[1], 2))
        inter = ix * iy
        return inter / (36 + (box[2] - box[0]) * (box[3] - box[1]) - inter)

    best = max(folders["pool_rows"], key=lambda row: max((hand_iou(b) for b in row[2]), default=0))
    assert best[0] == "p00"
    case = maker.make(TeachingRequest(box=request_box, seed=3))
    assert case.provenance["sample_id"] == "p00" and case.boxes == [[3, 3, 9, 9]]
    assert case.provenance["match_iou"] == pytest.approx(25 / 47)
    assert case.array[0, 0, 0] == 100  # p00 is the first image written: its pixels, not another's


def test_equal_box_matches_are_broken_by_the_seed(maker):
    picks = {seed: maker.make(TeachingRequest(label="tumour", box=[10, 10, 14, 14], seed=seed)).provenance["sample_id"]
             for seed in range(16)}
    assert set(picks.values()) == {"p03", "p04"}
    assert all(maker.make(TeachingRequest(label="tumour", box=[10, 10, 14, 14], seed=seed)).provenance["sample_id"]
               == pick for seed, pick in picks.items())


def test_attribute_requests_return_matching_attributes(maker):
    case = maker.make(TeachingRequest(size="large", seed=0))
    assert case.provenance["sample_id"] == "p05" and case.attributes["size"] == "large"
    assert case.typical is False and case.attributes["atypical_because"][0].startswith("size 'large' is rare")
    for seed in range(6):
        medium = maker.make(TeachingRequest(label="tumour", size="medium", seed=seed))
        assert (medium.label, medium.attributes["size"]) == ("tumour", "medium")


def test_quiz_cases_come_from_the_typical_or_the_atypical_part(maker, folders):
    hand = _hand_reference(folders["reference_rows"])
    rows = {row[0]: row for row in folders["pool_rows"]}
    for seed in range(10):
        for atypical in (False, True):
            case = maker.quiz_case(seed, atypical=atypical)
            _, label, boxes, size = rows[case.provenance["sample_id"]]
            assert _hand_atypical(hand, label, boxes, size) == atypical == (not case.typical)
            assert bool(case.attributes["atypical_because"]) == atypical
            assert maker.quiz_case(seed, atypical=atypical).provenance["sample_id"] == case.provenance["sample_id"]


def _one_sentence(message: str) -> bool:
    return "\n" not in message and message.count(". ") == 0 and len(message) < 300


@pytest.mark.parametrize("request_, expected", [
    (TeachingRequest(label="fracture"), "unknown class 'fracture'; choose one of non-tumour, rare, tumour"),
    (TeachingRequest(box=[10, 10, 20, 14]), "box [10.0, 10.0, 20.0, 14.0] is not inside the 16x16 image"),
    (TeachingRequest(box=[4, 4, 2, 8]), "is not inside the 16x16 image"),
    (TeachingRequest(box=[1, 2, 3]), "a box on this 16x16 image is 4 numbers x0,y0,x1,y1"),
    (TeachingRequest(size="huge"), "unknown size 'huge'; choose one of small, medium, large"),
    (TeachingRequest(attenuation="solid"), "these cases have no attenuation; ask without one"),
    (TeachingRequest(label="rare", size="large"), "the pool holds no case of class 'rare', size 'large'"),
])
def test_user_errors_are_one_clear_sentence(maker, request_, expected):
    with pytest.raises(UserError) as error:
        maker.make(request_)
    assert expected in str(error.value) and _one_sentence(str(error.value))


def test_a_folder_of_real_images_is_refused(folders):
    with pytest.raises(UserError) as error:
        PoolMaker(folders["reference"])
    message = str(error.value)
    assert str(folders["reference"]) in message and "teaching cases must be synthetic" in message
    assert _one_sentence(message)
    with pytest.raises(UserError, match=r"are synthetic \(the first: p00\); typicality is judged against real data"):
        PoolMaker(folders["pool"], reference=folders["pool"])


def test_without_a_reference_the_pool_is_its_own_reference(folders, tmp_path):
    maker = PoolMaker(folders["pool"])
    assert "the pool itself" in maker.describe()["reference"]["source"]
    boxes = np.array([b for row in folders["pool_rows"] for b in row[2]], float) / 16
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    np.testing.assert_allclose(maker.reference.area_range(), np.percentile(areas, [10, 90]))
    plain = _write(tmp_path / "plain", [("n0", "non-tumour", [], "small"), ("n1", "tumour", [], "small")], 16, True)
    with pytest.raises(UserError, match="the pool holds no atypical case by the rule"):
        PoolMaker(plain).quiz_case(0, atypical=True)
    with pytest.raises(UserError, match="no lesion boxes; ask without a box"):
        PoolMaker(plain).make(TeachingRequest(box=[1, 1, 4, 4]))


def test_importing_the_module_does_not_import_torch():
    code = ("import sys, pathosynth.reader.teaching_sources as m; "
            "print(sorted(n for n in ('torch', 'monai', 'pathosynth.generate') if n in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
