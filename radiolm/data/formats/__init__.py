"""Reading and writing the on-disk formats, each module one format; nothing here imports Lightning or a model.

* :mod:`~radiolm.data.formats.annotation`: the R2Gen ``annotation.json`` (IU-Xray, MIMIC-CXR, the phantom X-rays);
* :mod:`~radiolm.data.formats.labels_csv`: ``id`` + the 14 CheXpert columns;
* :mod:`~radiolm.data.formats.images`: decoding image files, the decode check, the record of checked files;
* :mod:`~radiolm.data.formats.volumes`: CT volumes (NIfTI, ``.npy`` / ``.npz``, folders of slice images);
* :mod:`~radiolm.data.formats.ctrg`: the CTRG-Chest layout (``reports.csv``) and its seeded split files;
* :mod:`~radiolm.data.formats.views`: view labels per image (``radiolm data views``);
* :mod:`~radiolm.data.formats.validation`: per-entry checks, :class:`Problem` and ``invalid-entries.json``.
"""
