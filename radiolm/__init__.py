"""radiolm: an experiment suite for LLM-based radiology report generation."""

__version__ = "0.1.0"
