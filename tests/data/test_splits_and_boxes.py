import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pathosynth.data.boxes import box_is_inside, boxes_from_mask, format_boxes, parse_boxes
from pathosynth.data.splits import SplitPlan, assign_splits, check_patient_splits, parse_ratios, read_split_file
from pathosynth.errors import UserError


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 80), seed=st.integers(0, 10_000),
       ratios=st.tuples(st.floats(0.05, 1), st.floats(0, 1), st.floats(0, 1)))
def test_ratio_split_assigns_every_patient_once_in_proportion(n, seed, ratios):
    total = sum(ratios)
    plan = SplitPlan(ratios=tuple(r / total for r in ratios), seed=seed)
    patients = [f"P{i}" for i in range(n)]
    assignment = assign_splits(patients + patients[: n // 2], plan)  # repeated ids: one patient, one split
    assert sorted(assignment) == sorted(patients)
    for split, ratio in zip(("train", "val", "test"), plan.ratios):
        count = sum(s == split for s in assignment.values())
        assert abs(count - ratio * n) <= 2
        if ratio > 0 and n >= 6:
            assert count >= 1


def test_ratio_split_is_seeded():
    patients = [f"P{i}" for i in range(40)]
    a = assign_splits(patients, SplitPlan(seed=1))
    assert a == assign_splits(list(reversed(patients)), SplitPlan(seed=1))
    assert a != assign_splits(patients, SplitPlan(seed=2))


def test_leakage_check_names_the_patient():
    rows = [{"patient_id": "A", "split": "train"}, {"patient_id": "A", "split": "test"},
            {"patient_id": "B", "split": "val"}]
    with pytest.raises(UserError, match="A in test, train"):
        check_patient_splits(rows)
    check_patient_splits(rows[1:])


def test_split_file_csv_json_and_errors(tmp_path):
    csv_file = tmp_path / "s.csv"
    csv_file.write_text("patient_id,split\nA,train\nB,test\n")
    assert read_split_file(csv_file) == {"A": "train", "B": "test"}
    json_file = tmp_path / "s.json"
    json_file.write_text(json.dumps({"train": ["A"], "val": ["B"]}))
    assert read_split_file(json_file) == {"A": "train", "B": "val"}
    with pytest.raises(UserError, match="not list 1 patient"):
        assign_splits(["A", "B", "C"], SplitPlan(explicit={"A": "train", "B": "val"}))
    (tmp_path / "bad.csv").write_text("patient_id,split\nA,training\n")
    with pytest.raises(UserError, match="unknown split 'training'"):
        read_split_file(tmp_path / "bad.csv")
    (tmp_path / "two.csv").write_text("patient_id,split\nA,train\nA,test\n")
    with pytest.raises(UserError, match="two splits"):
        read_split_file(tmp_path / "two.csv")


def test_parse_ratios():
    assert parse_ratios("7,1.5,1.5") == pytest.approx((0.7, 0.15, 0.15))
    for bad in ("0.7,0.3", "a,b,c", "0,0.5,0.5", "-1,1,1"):
        with pytest.raises(UserError):
            parse_ratios(bad)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(1, 5), st.integers(1, 5)),
                min_size=0, max_size=4))
def test_boxes_from_mask_recovers_separated_rectangles(cells):
    # rectangles in distinct 10x10 cells never touch, so each is one component with a known box
    mask = np.zeros((70, 70), bool)
    expected = []
    for cell, (cy, cx, h, w) in enumerate(dict(((c[0], c[1]), c) for c in cells).values()):
        y0, x0 = cy * 10, cx * 10
        mask[y0:y0 + h, x0:x0 + w] = True
        expected.append([x0, y0, x0 + w, y0 + h])
    assert boxes_from_mask(mask) == sorted(expected)


def test_boxes_from_mask_3d_and_min_size():
    mask = np.zeros((8, 9, 10), np.uint8)
    mask[1:3, 2:5, 3:7] = 4
    mask[6, 6, 6] = 1
    assert boxes_from_mask(mask) == [[3, 2, 1, 7, 5, 3], [6, 6, 6, 7, 7, 7]]
    assert boxes_from_mask(mask, min_size=2) == [[3, 2, 1, 7, 5, 3]]


def test_box_inside_and_text_round_trip():
    assert box_is_inside([0, 0, 10, 5], (5, 10))
    assert not box_is_inside([0, 0, 11, 5], (5, 10))
    assert not box_is_inside([3, 3, 3, 4], (5, 10))
    assert not box_is_inside([0, 0, 1, 1], (5, 5, 5))
    boxes = [[1, 2, 3, 4], [5.5, 6, 7, 8]]
    assert parse_boxes(format_boxes(boxes)) == boxes
    assert parse_boxes("") == []
    with pytest.raises(ValueError):
        parse_boxes("1,2,3")


def test_corner_touching_pixels_are_one_lesion():
    mask = np.zeros((6, 6), bool)
    mask[1, 1] = mask[2, 2] = mask[3, 3] = True
    assert boxes_from_mask(mask) == [[1, 1, 4, 4]]
