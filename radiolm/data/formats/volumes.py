"""Reading and writing CT volumes: NIfTI, ``.npy`` / ``.npz`` and folders of slice images.

Every reader returns a :class:`Volume`: a float32 array ``[D, H, W]`` (D = slices, inferior to superior; H =
anterior to posterior; W = patient right to patient left, the radiological display) and its voxel spacing in mm
``(d, h, w)``, or ``None`` when the file does not say. NIfTI arrays are stored ``(x, y, z) = (W, H, D)`` with a
diagonal affine, as :func:`write_nifti` writes them.

:func:`check_volume_file` is the validation before the first step: it reads a volume completely (a truncated gzip
fails only on reading the data) and returns a one-line problem, or ``None`` when the volume is usable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radiolm.errors import DataError

__all__ = [
    "SLICE_SUFFIXES",
    "VOLUME_SUFFIXES",
    "Volume",
    "check_volume_file",
    "find_volume",
    "read_slice_folder",
    "read_volume",
    "write_nifti",
]

VOLUME_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".npz", ".npy")
"""File suffixes :func:`read_volume` reads, in the order :func:`find_volume` tries them."""

SLICE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""Image suffixes of a slice folder (the CTRG-Chest-548K release holds one JPEG per slice)."""


@dataclass
class Volume:
    """A CT volume in memory.

    Attributes:
        array: float32 ``[D, H, W]``; Hounsfield units for NIfTI written by the suite, display values (0-255) for
            slice images.
        spacing: voxel size in mm ``(d, h, w)``, or ``None`` when the source does not record it.
    """

    array: np.ndarray
    spacing: tuple[float, float, float] | None


def _suffix(path: Path) -> str:
    """``.nii.gz`` for ``x.nii.gz``, else the lower-case last suffix."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _to_dhw(array: np.ndarray, path: Path) -> np.ndarray:
    """Drop a single channel axis (first or last) and check the rank is 3."""
    if array.ndim == 4 and 1 in (array.shape[0], array.shape[-1]):
        array = array[0] if array.shape[0] == 1 else array[..., 0]
    if array.ndim != 3:
        raise DataError(
            f"{path}: volume of shape {tuple(array.shape)}; expected 3 axes (or 4 with one channel). "
            "Re-export the scan as a single 3D volume."
        )
    return array


def _natural_key(path: Path) -> list[int | str]:
    """Sort key that orders ``slice_2`` before ``slice_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def read_slice_folder(folder: Path) -> Volume:
    """Stack a folder of 2D slice images (sorted by the numbers in their names) into ``[D, H, W]``.

    Raises:
        DataError: naming the folder when it holds no slice images, a slice cannot be decoded, or slices differ
            in size.
    """
    from PIL import Image

    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in SLICE_SUFFIXES), key=_natural_key)
    if not files:
        raise DataError(f"{folder}: no slice images ({', '.join(SLICE_SUFFIXES)}); point at the scan's slice folder.")
    slices = []
    for file in files:
        try:
            with Image.open(file) as image:
                slices.append(np.asarray(image.convert("L"), dtype=np.float32))
        except Exception as e:  # PIL raises several types for truncated / corrupt files
            raise DataError(f"{file}: cannot decode slice image ({e}); re-download this scan or remove it.") from None
    shapes = {s.shape for s in slices}
    if len(shapes) > 1:
        raise DataError(f"{folder}: slices differ in size {sorted(shapes)}; every slice of a scan must match.")
    return Volume(np.stack(slices), None)


def _read_nifti(path: Path) -> Volume:
    import nibabel as nib

    image: Any = nib.load(str(path))
    array = np.asarray(image.get_fdata(dtype=np.float32))
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    array = _to_dhw(array, path)
    array = np.ascontiguousarray(array.transpose(2, 1, 0))  # (x, y, z) = (W, H, D) -> (D, H, W)
    spacing = (zooms[2], zooms[1], zooms[0]) if len(zooms) == 3 else None
    return Volume(array, spacing)


def _read_numpy(path: Path) -> Volume:
    """``.npy``: the array ``[D, H, W]``. ``.npz``: key ``volume`` (else the first array) and optional ``spacing``."""
    spacing = None
    if _suffix(path) == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if not archive.files:
                raise DataError(f"{path}: empty .npz archive; save the volume under the key 'volume'.")
            array = archive["volume"] if "volume" in archive.files else archive[archive.files[0]]
            if "spacing" in archive.files:
                spacing = tuple(float(s) for s in np.asarray(archive["spacing"]).reshape(-1)[:3])
    else:
        array = np.load(path, allow_pickle=False)
    return Volume(_to_dhw(np.asarray(array, dtype=np.float32), path), spacing)  # type: ignore[arg-type]


def read_volume(path: str | Path) -> Volume:
    """Read one volume: ``.nii`` / ``.nii.gz``, ``.npy`` / ``.npz`` or a folder of slice images.

    Raises:
        DataError: naming the path when it is missing, of an unknown format, unreadable or truncated, or not 3D.
    """
    path = Path(path)
    if path.is_dir():
        return read_slice_folder(path)
    if not path.is_file():
        raise DataError(f"{path}: volume not found. Check `volumes_dir` or rebuild with `radiolm data prepare ...`.")
    suffix = _suffix(path)
    if suffix not in VOLUME_SUFFIXES:
        raise DataError(f"{path}: unknown volume format {suffix!r}; use one of {', '.join(VOLUME_SUFFIXES)}.")
    try:
        return _read_nifti(path) if suffix.startswith(".nii") else _read_numpy(path)
    except DataError:
        raise
    except Exception as e:  # nibabel / gzip / numpy raise many types for corrupt or truncated files
        reason = " ".join(str(e).split()) or type(e).__name__
        raise DataError(
            f"{path}: cannot read volume ({reason[:200]}); the file is corrupt or truncated. Re-download or "
            "re-convert it, or set skip_invalid: true to drop it."
        ) from None


def find_volume(volumes_dir: Path, study_id: str) -> Path:
    """The path of ``study_id`` under ``volumes_dir``: ``<id>.nii.gz | .nii | .npz | .npy`` or a folder ``<id>/``.

    Returns ``volumes_dir / f"{study_id}.nii.gz"`` when nothing exists, so that the missing file is named.
    """
    for suffix in VOLUME_SUFFIXES:
        candidate = volumes_dir / f"{study_id}{suffix}"
        if candidate.is_file():
            return candidate
    folder = volumes_dir / study_id
    return folder if folder.is_dir() else volumes_dir / f"{study_id}.nii.gz"


def check_volume_file(path: str | Path) -> str | None:
    """Validate one volume before training: ``None`` when usable, else a one-line problem naming the file.

    Checks: the file (or slice folder) exists; it decodes completely (a truncated ``.nii.gz`` fails here); it has
    3 axes (or 4 with one channel); it holds no NaN or infinite value; no axis is empty.
    """
    path = Path(path)
    if not path.exists():
        return f"{path}: volume not found"
    try:
        volume = read_volume(path)
    except DataError as e:
        return str(e)
    if min(volume.array.shape) == 0:
        return f"{path}: empty volume of shape {tuple(volume.array.shape)}"
    bad = int(np.count_nonzero(~np.isfinite(volume.array)))
    if bad:
        return f"{path}: {bad} NaN or infinite voxel(s); re-convert the scan or drop it (skip_invalid: true)"
    return None


def write_nifti(path: str | Path, array: np.ndarray, spacing: tuple[float, float, float]) -> Path:
    """Write ``array [D, H, W]`` as NIfTI with the voxel ``spacing (d, h, w)`` mm in the header.

    Integer arrays keep their dtype (the suite writes HU as int16); float arrays are written as float32.
    The affine is diagonal: x = W (towards patient left), y = H, z = D (towards the head).
    """
    import nibabel as nib

    path = Path(path)
    if array.ndim != 3:
        raise ValueError(f"write_nifti: array of shape {array.shape}; expected [D, H, W]")
    data = array if np.issubdtype(array.dtype, np.integer) else array.astype(np.float32)
    affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
    image = nib.Nifti1Image(np.ascontiguousarray(data.transpose(2, 1, 0)), affine)
    image.header.set_zooms((spacing[2], spacing[1], spacing[0]))
    image.header.set_xyzt_units("mm")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path
