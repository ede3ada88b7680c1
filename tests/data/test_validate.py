"""The validation module and the table reader against independent computations: plain Python
over every value, a rasterised box, Decimal parsing, Counter-style scans, realpath, csv."""

import csv
import io
import math
import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pathosynth.data import validate
from pathosynth.data.boxes import box_problem
from pathosynth.data.image import MedicalImage
from pathosynth.data.tables import read_table
from pathosynth.errors import BadInputError, UserError

LABEL_VALUES = [0.0, 1.0, 2.0, 4.0, 255.0, 256.0, 65535.0, 65536.0, 0.5, -1.0, -0.0, 1e20,
                math.nan, math.inf, -math.inf]


def _whole_label(value: float) -> bool:
    return math.isfinite(value) and value >= 0 and float(value).is_integer() and value <= 65535


@settings(max_examples=150, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 4)), elements=st.sampled_from(LABEL_VALUES)))
def test_label_map_keeps_whole_labels_and_refuses_the_rest(array):
    values = array.ravel().tolist()
    if all(_whole_label(v) for v in values):
        labels = validate.label_map(array, "seg.nii")
        assert labels.dtype == (np.uint8 if max(values) <= 255 else np.uint16)
        assert labels.ravel().tolist() == [int(v) for v in values]
    else:
        with pytest.raises(BadInputError, match="seg.nii"):
            validate.label_map(array, "seg.nii")


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32]),
       st.lists(st.integers(-2, 70000), min_size=1, max_size=12))
def test_label_map_of_integer_files(dtype, values):
    limits = np.iinfo(dtype)
    values = [min(max(v, limits.min), limits.max) for v in values]
    array = np.asarray(values, dtype=dtype)
    if min(values) >= 0 and max(values) <= 65535:
        assert validate.label_map(array, "seg").tolist() == values
    else:
        with pytest.raises(BadInputError):
            validate.label_map(array, "seg")


CAST_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-70000, 70000).map(float),
                        st.sampled_from([2.5, -0.5, 32767.0, 32768.0, -32768.0, -32769.0, 3.5e38, -3.5e38]))


@settings(max_examples=200, deadline=None)
@given(st.lists(CAST_VALUES, min_size=1, max_size=8),
       st.sampled_from([np.int16, np.uint8, np.uint16, np.int32, np.float32]))
def test_exact_cast_refuses_exactly_the_values_the_type_cannot_hold(values, dtype):
    array = np.asarray(values, dtype=np.float64)
    if np.issubdtype(dtype, np.integer):
        low, high = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
        holds = all(math.isfinite(v) and v.is_integer() and low <= v <= high for v in values)
    else:
        holds = all(math.isfinite(v) and abs(v) <= float(np.finfo(np.float32).max) for v in values)
    if holds:
        cast = validate.exact_cast(array, dtype, "f")
        assert cast.dtype == dtype
        if np.issubdtype(dtype, np.integer):
            assert cast.tolist() == [int(v) for v in values]
        else:
            assert np.all(np.isfinite(cast))
    else:
        with pytest.raises(BadInputError, match=f"{np.dtype(dtype).name} cannot hold"):
            validate.exact_cast(array, dtype, "f")


@settings(max_examples=100, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 5)),
              elements=st.sampled_from([0.0, 1.5, -7.0, math.nan, math.inf, -math.inf])))
def test_check_image_counts_nan_and_infinite_pixels(array):
    image = MedicalImage(array, (1.0, 1.0))
    if np.isfinite(array).all():
        validate.check_image(image, "x.tif")
        return
    with pytest.raises(BadInputError) as refused:
        validate.check_image(image, "x.tif")
    assert f"({int(np.isnan(array).sum())} NaN, {int(np.isinf(array).sum())} infinite)" in str(refused.value)


@given(st.tuples(st.sampled_from([1.0, 0.5, 0.0, -1.0, math.nan, math.inf]),
                 st.sampled_from([1.0, 2.5, 0.0, math.nan])))
def test_check_image_wants_positive_finite_spacing(spacing):
    image = MedicalImage(np.zeros((3, 3), np.int16), spacing)
    if all(math.isfinite(s) and s > 0 for s in spacing):
        validate.check_image(image, "x.nii")
    else:
        with pytest.raises(BadInputError, match="x.nii: has voxel spacing"):
            validate.check_image(image, "x.nii")


def test_check_image_refuses_a_broken_orientation_and_empty_or_complex_pixels():
    with pytest.raises(BadInputError, match="orientation"):
        validate.check_image(MedicalImage(np.zeros((3, 3)), (1.0, 1.0), direction=np.zeros((2, 2))), "a")
    with pytest.raises(BadInputError, match="orientation"):
        validate.check_image(MedicalImage(np.zeros((3, 3)), (1.0, 1.0), origin=(math.nan, 0.0)), "a")
    with pytest.raises(BadInputError, match="no pixels"):
        validate.check_image(MedicalImage(np.zeros((0, 3)), (1.0, 1.0)), "a")
    with pytest.raises(BadInputError, match="complex"):
        validate.check_image(MedicalImage(np.zeros((3, 3), np.complex64), (1.0, 1.0)), "a")


def _raster_inside(box: list[int], shape: tuple[int, ...]) -> bool:
    """Paint the box on a padded canvas (x is the last array axis): valid when it covers at least
    one pixel and every pixel it covers lies in the image."""
    dims = len(shape)
    pad = max(abs(v) for v in box) + 1
    canvas = np.zeros(tuple(n + 2 * pad for n in shape), bool)
    canvas[tuple(slice(pad + box[dims - 1 - axis], pad + box[2 * dims - 1 - axis]) for axis in range(dims))] = True
    inside = canvas[tuple(slice(pad, pad + n) for n in shape)].sum()
    return bool(canvas.sum() > 0 and inside == canvas.sum())


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from([2, 3]))
def test_box_problem_agrees_with_a_rasterised_box(data, dims):
    shape = tuple(data.draw(st.lists(st.integers(1, 8), min_size=dims, max_size=dims)))
    box = data.draw(st.lists(st.integers(-3, 11), min_size=2 * dims, max_size=2 * dims))
    assert (box_problem(box, shape) is None) == _raster_inside(box, shape)


@pytest.mark.parametrize("box, wanted", [
    ([0, 0, math.nan, 3], "non-finite"), ([0, 0, math.inf, 3], "non-finite"), ([0, 0, 3], "has 3 numbers"),
    ([3, 0, 1, 3], "max corner"), ([0, 0, 10, 3], "outside the 4x5 image"), (["a", 0, 1, 1], "not a number"),
])
def test_box_problem_names_what_is_wrong(box, wanted):
    assert wanted in box_problem(box, (5, 4))
    with pytest.raises(BadInputError, match="labels.csv line 4"):
        validate.check_boxes([box], (5, 4), "labels.csv line 4")


NUMBER_TEXTS = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999", "", " ", "abc", "0", "-0", "100",
                     "100.0", " 7 ", "1_0", "3mm", "sNaN"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-1000, 1000).map(str),
)


@settings(max_examples=300, deadline=None)
@given(NUMBER_TEXTS)
def test_number_accepts_exactly_the_finite_values_in_range(text):
    try:
        exact = Decimal(text.strip())
    except InvalidOperation:
        exact = Decimal("NaN")
    finite = exact.is_finite() and abs(exact) <= Decimal(np.finfo(np.float64).max.item())
    in_range = finite and Decimal(0) < exact <= Decimal(100)
    if in_range:
        assert validate.number(text, "a.csv line 2", "diameter_mm", above=0, at_most=100) == float(exact)
    else:
        with pytest.raises(BadInputError, match=r"a.csv line 2: diameter_mm is '.*'; give a finite number above 0"):
            validate.number(text, "a.csv line 2", "diameter_mm", above=0, at_most=100)
    if finite:
        assert validate.number(text, "w", "coordX") == float(exact)


@given(st.lists(st.integers(0, 6), max_size=10))
def test_require_unique_names_the_first_repeat(keys):
    first_repeat = next((j for j in range(len(keys)) if keys[j] in keys[:j]), None)
    places = [f"row {i}" for i in range(len(keys))]
    if first_repeat is None:
        validate.require_unique(zip(keys, places), "hold", "fix it")
        return
    earlier = keys.index(keys[first_repeat])
    with pytest.raises(UserError) as refused:
        validate.require_unique(zip(keys, places), "hold", "fix it")
    assert str(refused.value) == f"row {earlier} and row {first_repeat} hold {keys[first_repeat]}; fix it"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "..", ".", "out", "in"]), min_size=1, max_size=5))
def test_inside_folder_agrees_with_realpath(tmp_path_factory, parts):
    base = tmp_path_factory.getbasetemp() / "inside"
    root = base / "root"
    if not root.exists():
        (root / "a" / "b").mkdir(parents=True)
        (base / "elsewhere").mkdir()
        os.symlink(base / "elsewhere", root / "out")  # a link leaving the folder
        os.symlink(root / "a", root / "in")  # a link staying inside
    path = root.joinpath(*parts)
    real_root = os.path.realpath(root)
    expected = os.path.commonpath([real_root, os.path.realpath(path)]) == real_root
    if expected:
        assert validate.inside_folder(path, root, "t") == Path(os.path.realpath(path))
    else:
        with pytest.raises(BadInputError, match="outside the source folder"):
            validate.inside_folder(path, root, "t")


def test_file_name_refuses_what_cannot_be_one_file():
    for good in ("1.2.840.113654", "Case_001", "p0 left", "Zoë"):
        assert validate.file_name(good, "w") == good
    for bad in ("", ".", "..", "a/b", "..\\x", "a\nb", "x" * 201):
        with pytest.raises(BadInputError, match="cannot be a file name"):
            validate.file_name(bad, "w")


def test_output_folder_refuses_inputs_and_files(tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "file").write_text("x")
    validate.output_folder(tmp_path / "ds", [tmp_path / "src"])
    validate.output_folder(tmp_path / "src" / "ds", [tmp_path / "src"])  # beside the images: harmless
    for out in (tmp_path / "src", tmp_path, tmp_path / "src" / "sub" / ".."):
        with pytest.raises(UserError, match="would delete"):
            validate.output_folder(out, [tmp_path / "src" / "sub"])
    for out in (tmp_path / "file", tmp_path / "file" / "ds"):
        with pytest.raises(UserError, match="is a file"):
            validate.output_folder(out, [])


# the table reader: whatever Excel saved, the cells are what csv reads from the original text

CELL = st.text(st.characters(min_codepoint=32, max_codepoint=255, blacklist_characters='",;\t\x7f',
                             blacklist_categories=("Cc",)), min_size=1, max_size=6).filter(lambda s: s.strip())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(CELL, CELL), min_size=1, max_size=4),
       st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]), st.sampled_from([",", ";", "\t"]))
def test_read_table_decodes_what_excel_writes(tmp_path_factory, rows, encoding, delimiter):
    text = "\n".join(delimiter.join(row) for row in [("name", "value"), *rows]) + "\n"
    raw = text.encode(encoding)
    if encoding in ("latin-1", "cp1252"):
        assume(not _is_utf8(raw))  # such bytes are also valid UTF-8 text: nothing can tell them apart
    path = tmp_path_factory.mktemp("t") / "t.csv"
    path.write_bytes(raw)
    table = read_table(path, ("name", "value"))
    expected = [{k: v.strip() for k, v in row.items()}
                for row in csv.DictReader(io.StringIO(text), delimiter=delimiter)]
    assert [row for _, row in table.rows] == expected
    assert [line for line, _ in table.rows] == list(range(2, len(rows) + 2))


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_read_table_refuses_what_is_not_a_table(tmp_path):
    path = tmp_path / "t.csv"
    cases = [(b"", "is empty"), (b"name,value\n1,2,3\n", "line 2: 3 cells but the header has 2"),
             (b"name,name,value\n", "name appear more than once"), (b"x,y\n", "missing column(s) name, value"),
             (b"PK\x03\x04\x00", "not a text CSV"), (b"\xff\xfen\x00\xd8", "does not match the byte-order mark")]
    for content, wanted in cases:
        path.write_bytes(content)
        with pytest.raises(UserError) as refused:
            read_table(path, ("name", "value"))
        assert str(refused.value).startswith(str(path)) and wanted in str(refused.value)
    with pytest.raises(UserError, match="t.csv: table not found"):
        read_table(tmp_path / "none" / "t.csv", ("name",))
