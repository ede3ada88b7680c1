"""Read medical images into `MedicalImage` under the axis convention of `image.py`.

One entry point, `read_image`, picks the reader from the path: a folder is a DICOM series,
``.nii``/``.nii.gz`` is NIfTI (nibabel), ``.mhd``/``.mha``/``.nrrd``/``.nhdr`` go through
SimpleITK, ``.dcm`` is one (possibly multi-frame) DICOM file, ``.png``/``.tif``/``.tiff`` are
8- or 16-bit 2D images. Every failure is a `BadInputError` naming the file.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from pathosynth.data.image import MedicalImage
from pathosynth.data.paths import kind_of
from pathosynth.errors import BadInputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
SITK_SUFFIXES = (".mhd", ".mha", ".nrrd", ".nhdr")
PLAIN_2D_SUFFIXES = (".png", ".tif", ".tiff")
DICOM_SUFFIXES = (".dcm",)
MAX_VOXELS = 2**31  # 4 GiB of int16: beyond any CT or MR volume, short of what exhausts memory
REPAIR_HINT = "check that the file is complete and really in that format, or re-export it"

# LPS = diag(-1, -1, 1) @ RAS: NIfTI affines are RAS, our world frame is LPS like DICOM and ITK.
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def image_suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def read_image(path: str | Path) -> MedicalImage:
    path = Path(path)
    kind = kind_of(path)
    if kind is None:
        raise BadInputError(path, "does not exist", "check the path")
    if kind == "dir":
        from pathosynth.data.dicom import read_dicom_series

        return read_dicom_series(path)
    suffix = image_suffix(path)
    if suffix in NIFTI_SUFFIXES:
        return read_nifti(path)
    if suffix in SITK_SUFFIXES:
        return read_sitk(path)
    if suffix in PLAIN_2D_SUFFIXES:
        return read_plain_2d(path)
    if suffix in DICOM_SUFFIXES:
        from pathosynth.data.dicom import read_dicom_file

        return read_dicom_file(path)
    if _has_dicom_preamble(path):
        from pathosynth.data.dicom import read_dicom_file

        return read_dicom_file(path)
    known = ", ".join(NIFTI_SUFFIXES + SITK_SUFFIXES + PLAIN_2D_SUFFIXES + DICOM_SUFFIXES)
    raise BadInputError(path, f"has an unknown image type '{suffix}'",
                        f"convert it to one of {known}, or a DICOM series folder")


def read_nifti(path: Path) -> MedicalImage:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        _check_declared_size(path, img.shape)
        data = np.asanyarray(img.dataobj)
    except BadInputError:
        raise
    except Exception as exc:  # nibabel raises many types for truncated or corrupt files
        raise BadInputError(path, f"cannot be read as NIfTI ({_short(exc)})", REPAIR_HINT) from exc
    if data.ndim < 2 or data.ndim > 4:
        raise BadInputError(path, f"has {data.ndim} dimensions", "pathosynth reads 2D, 3D and 4D NIfTI")
    zooms = [float(z) for z in img.header.get_zooms()]
    affine = np.asarray(img.affine, dtype=float)
    spatial = min(data.ndim, 3)
    columns = affine[:3, :spatial]
    norms = np.linalg.norm(columns, axis=0)
    norms[norms == 0] = 1.0
    direction_ijk = _RAS_TO_LPS @ (columns / norms)
    # pixdim 0 means "not recorded" (1 mm, as for PNG); NaN or inf are damage that validation reports
    spacing_ijk = [1.0 if zooms[i] == 0 else zooms[i] for i in range(spatial)]
    origin = tuple(float(v) for v in _RAS_TO_LPS @ affine[:3, 3])
    if data.ndim == 2:
        array = data.T
        direction = direction_ijk[:2, ::-1]
        origin = origin[:2]
    elif data.ndim == 3:
        array = data.transpose(2, 1, 0)
        direction = direction_ijk[:, ::-1]
    else:  # 4D: the fourth NIfTI axis is time or channels; it becomes our leading channel axis
        array = data.transpose(3, 2, 1, 0)
        direction = direction_ijk[:, ::-1]
    return MedicalImage(_native(array), tuple(spacing_ijk[::-1]), origin, direction)


def read_sitk(path: Path) -> MedicalImage:
    import SimpleITK as sitk

    try:
        header = sitk.ImageFileReader()
        header.SetFileName(str(path))
        header.ReadImageInformation()
        _check_declared_size(path, header.GetSize())
        img = sitk.ReadImage(str(path))
        array = sitk.GetArrayFromImage(img)
    except BadInputError:
        raise
    except Exception as exc:  # SimpleITK raises RuntimeError with a long ITK trace
        raise BadInputError(path, f"cannot be read ({_short(exc)})", REPAIR_HINT) from exc
    dims = img.GetDimension()
    itk_direction = np.asarray(img.GetDirection(), dtype=float).reshape(dims, dims)
    if img.GetNumberOfComponentsPerPixel() > 1:
        array = np.moveaxis(array, -1, 0)
    return MedicalImage(
        array,
        tuple(float(s) for s in img.GetSpacing()[::-1]),
        tuple(float(o) for o in img.GetOrigin()),
        itk_direction[:, ::-1],
    )


def read_plain_2d(path: Path) -> MedicalImage:
    """8- or 16-bit grey PNG/TIFF (colour images are reduced to luminance)."""
    from PIL import Image, UnidentifiedImageError

    try:
        # Pillow warns above MAX_IMAGE_PIXELS (about 9500 x 9500) and refuses above twice that: a
        # small file may declare a huge image ("decompression bomb"). Both become one message.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as pil:
                pil.load()
                dpi = pil.info.get("dpi")
                if pil.mode in ("I;16", "I;16B", "I;16L", "I", "F", "L"):
                    array = np.asarray(pil)
                else:
                    array = np.asarray(pil.convert("L"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(declared[1]):,}" if declared else "too many"
        raise BadInputError(path, f"declares {count} pixels, more than the {Image.MAX_IMAGE_PIXELS:,} "
                            "pathosynth reads from one image (a small file that declares a huge image is a "
                            "decompression bomb)", "downscale or crop the image, or check where it came from") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(path, f"cannot be read as an image ({_short(exc)})", REPAIR_HINT) from exc
    if array.dtype == np.int32 and array.size and array.min() >= 0 and array.max() <= 65535:
        array = array.astype(np.uint16)
    spacing = (1.0, 1.0)
    if dpi and all(float(d) > 0 for d in dpi[:2]):
        spacing = (25.4 / float(dpi[1]), 25.4 / float(dpi[0]))
    return MedicalImage(_native(array), spacing)


def _check_declared_size(path: Path, shape) -> None:
    """A header may declare far more voxels than its file holds; refuse before allocating them."""
    count = int(np.prod([int(n) for n in shape], dtype=object))
    if count > MAX_VOXELS:
        raise BadInputError(path, f"declares {count:,} voxels (shape {tuple(int(n) for n in shape)}), more than "
                            f"the {MAX_VOXELS:,} pathosynth reads from one image", "crop or downsample it, or "
                            "check that its header is not damaged")


def _native(array: np.ndarray) -> np.ndarray:
    """Contiguous, native byte order: big-endian NIfTI and TIFF data would otherwise reach
    torch.from_numpy, which rejects non-native byte order."""
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))


def _has_dicom_preamble(path: Path) -> bool:
    """DICOM files often have no suffix; Part 10 files carry 'DICM' after a 128-byte preamble."""
    with path.open("rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
