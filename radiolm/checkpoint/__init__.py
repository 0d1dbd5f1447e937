"""Checkpoints of a run: read the trainable weights whatever wrote them (:mod:`radiolm.checkpoint.read`), and
``radiolm checkpoint export`` (:mod:`radiolm.checkpoint.export`): trainable weights as safetensors + the config.
"""
