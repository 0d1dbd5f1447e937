"""Lightning callbacks of radiolm, importable from YAML as ``radiolm.callbacks.<Name>``.

This folder is the top-level ``callbacks/`` of the repository; packaging maps it to the import name
``radiolm.callbacks`` (``[tool.setuptools.package-dir]`` in ``pyproject.toml``).
"""

from radiolm.callbacks.encoder_unfreeze import EncoderUnfreeze
from radiolm.callbacks.progress_log import ProgressLog
from radiolm.callbacks.report_samples import ReportSamples

__all__ = ["EncoderUnfreeze", "ProgressLog", "ReportSamples"]
