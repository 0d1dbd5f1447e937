"""Image files: decoding to 8-bit PIL images, the decode check before training, and the record of files that passed.

:func:`load_image` is what a dataset calls per item; :func:`check_image_file` is the validation before the first step
(it reads the file to its last byte); :class:`CheckedFiles` remembers files that passed, so a large data set is
decoded once, not on every run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from radiolm.errors import DataError

__all__ = ["CheckedFiles", "check_image_file", "load_image"]

log = logging.getLogger(__name__)


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as 8-bit (``L``, ``RGB`` or ``RGBA``); 16-bit grayscale is rescaled by its bit depth.

    Raises:
        DataError: naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found. Check the image root or rebuild the data set.")
    im: Image.Image
    try:
        with Image.open(path) as im:
            im.load()
    except Exception as e:  # PIL raises several types for truncated / corrupt files
        raise DataError(f"{path}: cannot decode image ({e}). Re-download or remove this study.") from None
    if im.mode in ("I;16", "I;16B", "I", "F"):
        arr = np.asarray(im, dtype=np.float32)
        scale = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / scale * 255.0, 0, 255).astype(np.uint8), mode="L")
    return im


def check_image_file(path: Path, *, draft: bool = True) -> str | None:
    """``None`` when ``path`` is an image that decodes to its last byte, else a message naming the file.

    Args:
        path: The image file.
        draft: Let JPEG files decode at 1/8 scale (``Image.draft``): the whole entropy-coded stream is still read, so
            a truncated or corrupt file still fails, at a fraction of the cost of a full-size decode (a MIMIC-CXR
            JPEG is about 2500 x 3000 pixels).
    """
    if not path.is_file():
        return f"{path}: image file not found; check the image root or download the file"
    try:
        with Image.open(path) as im:
            if draft and im.format == "JPEG":
                im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ... for truncated / corrupt files
        return f"{path}: cannot decode image ({type(e).__name__}: {e}); re-download or remove it"
    return None


class CheckedFiles:
    """Files that passed a decode check, remembered by size and modification time in a JSON file.

    Decoding every image of MIMIC-CXR (377k JPEGs) takes hours of CPU, so a DataModule decodes each file once:
    later runs re-check only files that are new or changed since (a replaced or truncated file has another size or
    mtime). Without a writable place for the record, every run decodes everything.

    Args:
        path: The record (e.g. ``<annotation dir>/.radiolm-checked-images.json``); ``None`` keeps nothing.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.files: dict[str, list[int]] = {}
        if path is not None and path.is_file():
            try:
                self.files = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):  # a broken record only costs a re-check
                self.files = {}
        self.changed = False

    def check_image(self, path: Path) -> str | None:
        """:func:`check_image_file`, skipped when ``path`` passed before with the same size and mtime."""
        try:
            stat = path.stat()
        except OSError:
            return check_image_file(path)
        key, stamp = str(path), [stat.st_size, stat.st_mtime_ns]
        if self.files.get(key) == stamp:
            return None
        message = check_image_file(path)
        if message is None:
            self.files[key] = stamp
            self.changed = True
        return message

    def save(self) -> None:
        """Write the record (atomically) when something was added; an unwritable place is logged, not an error."""
        if self.path is None or not self.changed:
            return
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.files), encoding="utf-8")
            os.replace(tmp, self.path)
            self.changed = False
        except OSError as e:
            log.info("radiolm: cannot record the checked images in %s (%s); the next run checks them again", tmp, e)
