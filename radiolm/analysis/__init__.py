"""The papers' analyses of trained runs (``radiolm analyze <name>``); each writes ``<name>.png`` + ``<name>.json``.

:mod:`radiolm.analysis.run` loads a run folder (its saved config and a checkpoint) back into a model and its data.
"""
