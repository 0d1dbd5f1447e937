"""``radiolm data prepare ...``, ``radiolm data views`` and ``radiolm data bench``: each module is one command,
``main(argv)``.

* :mod:`~radiolm.data.builders.iu_xray`: IU-Xray (Open-i) -> the R2Gen layout;
* :mod:`~radiolm.data.builders.mimic_cxr`: MIMIC-CXR(-JPG) -> the R2Gen layout with the official split;
* :mod:`~radiolm.data.builders.ctrg_chest`: CTRG-Chest-548K -> the CTRG layout;
* :mod:`~radiolm.data.builders.views`: the bidirectional method's frontal / lateral view classifier, trained on
  the training images, and its cached labels (a preprocessing step, paper §3);
* :mod:`~radiolm.data.builders.benchmark`: DataLoader throughput on phantom data.
"""
