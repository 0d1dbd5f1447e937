"""Sample studies to look at after validation and test: pictures, generated and reference report, CE labels.

:mod:`~radiolm.samples.studies` picks and labels the studies, :mod:`~radiolm.samples.page` writes the static HTML
page ``samples-<stage>-<epoch>.html``, :mod:`~radiolm.samples.table` builds the W&B table;
:class:`radiolm.callbacks.ReportSamples` runs them after every evaluation.
"""

from radiolm.samples.page import page_name, render_page, write_page
from radiolm.samples.studies import SampleStudy, sample_studies
from radiolm.samples.table import wandb_table

__all__ = ["SampleStudy", "page_name", "render_page", "sample_studies", "wandb_table", "write_page"]
