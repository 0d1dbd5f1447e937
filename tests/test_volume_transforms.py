"""CT volume readers (NIfTI, .npy / .npz, slice folders) and the named MONAI presets: shapes and intensity ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from radiolm.data.datamodules.volume_transforms import (
    VOLUME_PRESETS,
    VolumeTransform,
    VolumeTransformConfig,
    volume_preset,
)
from radiolm.data.formats.volumes import Volume, check_volume_file, find_volume, read_volume, write_nifti
from radiolm.errors import DataError


def hu_volume(shape: tuple[int, int, int] = (20, 40, 48), seed: int = 0) -> np.ndarray:
    """int16 HU from air to bone."""
    return np.random.default_rng(seed).integers(-1024, 1500, shape).astype(np.int16)


def test_nifti_round_trip_keeps_axes_dtype_and_spacing(tmp_path: Path) -> None:
    array = hu_volume()
    path = write_nifti(tmp_path / "a.nii.gz", array, (5.0, 0.75, 0.5))
    volume = read_volume(path)
    assert volume.array.shape == (20, 40, 48) and volume.array.dtype == np.float32
    assert np.array_equal(volume.array, array.astype(np.float32))
    assert volume.spacing == (5.0, 0.75, 0.5)
    import nibabel as nib

    image = nib.load(str(path))
    assert image.get_data_dtype() == np.int16 and image.shape == (48, 40, 20)  # (x, y, z) = (W, H, D)


def test_numpy_readers(tmp_path: Path) -> None:
    array = hu_volume((6, 8, 10))
    np.save(tmp_path / "a.npy", array[None])  # a leading channel of 1 is dropped
    np.savez(tmp_path / "b.npz", volume=array, spacing=np.array([2.0, 1.0, 1.0]))
    a, b = read_volume(tmp_path / "a.npy"), read_volume(tmp_path / "b.npz")
    assert a.array.shape == b.array.shape == (6, 8, 10)
    assert a.spacing is None and b.spacing == (2.0, 1.0, 1.0)
    assert np.array_equal(a.array, b.array)


def test_slice_folder_sorted_by_number(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    for index in (1, 2, 10):  # "10" sorts after "2" numerically, before it as text
        Image.fromarray(np.full((12, 16), index * 20, dtype=np.uint8)).save(folder / f"s_{index}.jpg", quality=100)
    volume = read_volume(folder)
    assert volume.array.shape == (3, 12, 16) and volume.spacing is None
    assert [round(float(v)) for v in volume.array[:, 6, 8]] == [20, 40, 200]
    assert find_volume(tmp_path, "study") == folder


def test_find_volume_prefers_nifti_and_names_missing(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", hu_volume((4, 4, 4)))
    assert find_volume(tmp_path, "x") == tmp_path / "x.npy"
    assert find_volume(tmp_path, "absent") == tmp_path / "absent.nii.gz"


@pytest.mark.parametrize("name", sorted(VOLUME_PRESETS))
def test_presets_shapes_and_ranges(name: str) -> None:
    volume = Volume(hu_volume((40, 100, 120)).astype(np.float32), (5.0, 0.7, 0.7))
    out = VolumeTransform(volume_preset(name))(volume)
    expected = {"dia_llama": (1, 64, 256, 256), "dia_llama_hu": (1, 64, 256, 256), "cmrg": (1, 64, 224, 224)}
    assert type(out) is torch.Tensor and out.dtype == torch.float32
    assert tuple(out.shape) == expected[name]
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_minmax_and_hu_window_values() -> None:
    array = np.array([-2000, -1000, -400, 200, 3000], dtype=np.float32).reshape(1, 1, 5).repeat(2, 0).repeat(2, 1)
    volume = Volume(array, (1.0, 1.0, 1.0))
    minmax = VolumeTransform(VolumeTransformConfig(size=(2, 2, 5), intensity="minmax"))(volume)[0, 0, 0]
    window = VolumeTransform(VolumeTransformConfig(size=(2, 2, 5), intensity="hu_window"))(volume)[0, 0, 0]
    assert minmax.tolist() == pytest.approx([0.0, 0.2, 0.32, 0.44, 1.0])
    assert window.tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])  # [-1000, 200] -> [0, 1], clipped


def test_cmrg_resamples_to_its_spacing_then_pads() -> None:
    # 300 x 300 mm in-plane at 1 mm, 100 mm at 2.5 mm -> 200 x 200 x 20 at 1.5 x 1.5 x 5 mm -> padded to 224 x 224 x 64
    volume = Volume(np.full((40, 300, 300), 200.0, dtype=np.float32), (2.5, 1.0, 1.0))
    transform = VolumeTransform(volume_preset("cmrg"))
    assert transform.resampled_shape((40, 300, 300), (2.5, 1.0, 1.0)) == (20, 200, 200)
    out = transform(volume)[0]
    assert tuple(out.shape) == (64, 224, 224)
    assert float(out[32, 112, 112]) == pytest.approx(1.0) and float(out[0, 0, 0]) == 0.0
    assert int((out > 0.5).sum()) == 20 * 200 * 200


def test_preset_overrides_and_errors() -> None:
    config = volume_preset("dia_llama", size=[8, 16, 16], intensity="hu_window", window=[-500, 500])
    assert config.size == (8, 16, 16) and config.intensity == "hu_window" and config.window == (-500.0, 500.0)
    with pytest.raises(ValueError, match="unknown volume preset 'radfm'"):
        volume_preset("radfm")
    with pytest.raises(ValueError, match="three positive integers"):
        volume_preset("dia_llama", size=[64, 256])
    with pytest.raises(DataError, match=r"scan\.npy: the volume records no voxel spacing"):
        VolumeTransform(volume_preset("cmrg"))(Volume(np.zeros((4, 4, 4), np.float32), None), source="scan.npy")


def test_check_volume_file_names_each_problem(tmp_path: Path) -> None:
    good = write_nifti(tmp_path / "good.nii.gz", hu_volume((8, 8, 8)), (1.0, 1.0, 1.0))
    assert check_volume_file(good) is None
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"not a volume at all")
    np.save(tmp_path / "flat.npy", np.zeros((8, 8), np.float32))
    np.save(tmp_path / "nan.npy", np.full((4, 4, 4), np.nan, np.float32))
    expected = {
        "missing.nii.gz": "volume not found",
        "truncated.nii.gz": "cannot read volume",
        "garbage.nii.gz": "cannot read volume",
        "flat.npy": "expected 3 axes",
        "nan.npy": "64 NaN or infinite voxel(s)",
    }
    for name, message in expected.items():
        problem = check_volume_file(tmp_path / name)
        assert problem is not None and str(tmp_path / name) in problem and message in problem, problem
