"""Write `MedicalImage`s, the inverse of `readers.py` under the same axis convention."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from pathosynth.data.image import MedicalImage

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def write_image(path: str | Path, image: MedicalImage, description: str = "") -> None:
    """Pick the writer from the suffix: NIfTI, MetaImage/NRRD or 16-/8-bit PNG. `description`
    goes into the file's own metadata (PNG text chunk, NIfTI descrip, ITK key), e.g. to mark an
    image synthetic wherever the file travels without its manifest."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        write_nifti(path, image, description)
    elif name.endswith((".mhd", ".mha", ".nrrd")):
        write_sitk(path, image, description)
    elif name.endswith(".png"):
        write_png(path, image.array, description)
    else:
        raise ValueError(f"no writer for {path.name}")


def _portable(array: np.ndarray) -> np.ndarray:
    """NIfTI and ITK have no bool and nibabel refuses int64 (numpy's default integer): narrow them."""
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype in (np.int64, np.uint64):
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        if np.iinfo(np.int32).min <= low and high <= np.iinfo(np.int32).max:
            return array.astype(np.int32)
        return array.astype(np.float64)
    return array


def write_nifti(path: Path, image: MedicalImage, description: str = "") -> None:
    import nibabel as nib

    dims = image.spatial_dims
    direction_ijk = np.asarray(image.direction)[:, ::-1]
    spacing_ijk = np.asarray(image.spacing[::-1], dtype=float)
    affine = np.eye(4)
    world = np.zeros((3, dims))
    world[: direction_ijk.shape[0], :] = direction_ijk
    affine[:3, :dims] = _LPS_TO_RAS @ world * spacing_ijk
    origin = np.zeros(3)
    origin[:dims] = image.origin
    affine[:3, 3] = _LPS_TO_RAS @ origin
    if dims == 2:
        affine[2, 2] = 1.0
    array = _portable(image.array)
    data = np.transpose(array, tuple(range(array.ndim))[::-1])  # [c,]z,y,x -> x,y,z[,c]
    nifti = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    zooms = list(spacing_ijk) + [1.0] * (data.ndim - dims)
    nifti.header.set_zooms(zooms)
    nifti.header.set_xyzt_units("mm")
    if description:
        nifti.header["descrip"] = description.encode("ascii", "replace")[:79]
    if path.name.lower().endswith(".gz"):
        # gzip's header stores a time stamp; zero it so the same image always gives the same bytes
        path.write_bytes(gzip.compress(nifti.to_bytes(), compresslevel=6, mtime=0))
    else:
        nib.save(nifti, str(path))


def write_sitk(path: Path, image: MedicalImage, description: str = "") -> None:
    import SimpleITK as sitk

    is_vector = image.array.ndim == image.spatial_dims + 1
    array = _portable(image.array)
    array = np.moveaxis(array, 0, -1) if is_vector else array
    img = sitk.GetImageFromArray(np.ascontiguousarray(array), isVector=is_vector)
    img.SetSpacing([float(s) for s in image.spacing[::-1]])
    img.SetOrigin([float(o) for o in image.origin])
    img.SetDirection([float(v) for v in np.asarray(image.direction)[:, ::-1].ravel()])
    if description:
        img.SetMetaData("Description", description)
    sitk.WriteImage(img, str(path), useCompression=path.suffix.lower() != ".mhd")


def write_png(path: Path, array: np.ndarray, description: str = "") -> None:
    """A grey PNG; uint8 stays 8-bit, uint16 is written 16-bit. Other types must be converted first."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    if array.ndim != 2:
        raise ValueError(f"PNG holds one 2D channel, got shape {array.shape}")
    info = PngInfo()
    if description:
        info.add_text("Description", description)
    if array.dtype == np.uint8:
        Image.fromarray(array, mode="L").save(path, pnginfo=info)
    elif array.dtype == np.uint16:
        Image.fromarray(array).save(path, pnginfo=info)
    else:
        raise ValueError(f"write_png takes uint8 or uint16, got {array.dtype}")
