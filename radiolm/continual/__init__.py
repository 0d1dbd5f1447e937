"""Continual learning: train a sequence of tasks stage by stage and score every seen task after each stage.

* :mod:`radiolm.continual.matrix`: the score matrix ``v_{s,t}``, its averages ``v_t`` (CMRG-LLM §3.1), backward
  transfer and forgetting (not in the paper), written as ``continual-matrix.{json,md,png}``.
* :mod:`radiolm.continual.sequence`: the driver that ``fit`` runs when the data is a
  :class:`~radiolm.data.ContinualDataModule`: one Trainer per stage, tests after each stage, resume.
"""
