"""The package list only; everything else is in pyproject.toml.

Every package under ``radiolm/`` ships, data folders included (PEP 420 namespaces such as ``radiolm/data/splits``,
whose files ``package-data`` names), and the top-level ``callbacks/`` folder ships as ``radiolm.callbacks``
(``package-dir`` in pyproject.toml). pyproject's ``packages.find`` cannot add that one: it names a package after
its folder, and ``callbacks/`` is not inside ``radiolm/``.
"""

from setuptools import find_namespace_packages, setup

CACHES = ["__pycache__", "*.__pycache__"]
radiolm = find_namespace_packages(include=["radiolm", "radiolm.*"], exclude=["radiolm.callbacks*", *CACHES])
callbacks = [f"radiolm.callbacks.{name}" for name in find_namespace_packages("callbacks", exclude=CACHES)]
setup(packages=[*radiolm, "radiolm.callbacks", *callbacks])
