"""Natural-language-generation metrics with pycocoevalcap, as R2Gen's ``compute_scores`` does.

BLEU-1..4, METEOR 1.5 (the jar inside pycocoevalcap; Java needed), ROUGE-L and CIDEr-D over one prediction and one
reference per study. Texts are scored as given (R2Gen-style cleaned, lower-case, space-separated punctuation);
the references are never truncated. SPICE is not offered: it downloads Stanford CoreNLP at run time.
"""

from __future__ import annotations

import logging
import shutil

__all__ = ["NLG_METRICS", "compute_nlg"]

log = logging.getLogger(__name__)

NLG_METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")


def _one_line(text: str) -> str:
    # METEOR's stdio protocol is line based and uses '|||' as separator.
    return " ".join(text.replace("|||", " ").split())


def compute_nlg(predictions: list[str], references: list[str], meteor: bool = True) -> dict[str, float]:
    """Corpus-level NLG scores.

    Args:
        predictions: One generated report per study.
        references: The reference report of each study, same order.
        meteor: Compute METEOR (starts a JVM, about 5 s).

    Returns:
        ``{"bleu1", ..., "bleu4", "meteor", "rouge_l", "cider"}``; ``meteor`` is absent (with a logged reason)
        when Java is not installed, never 0.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("no predictions to score")
    res = {i: [_one_line(p)] for i, p in enumerate(predictions)}
    gts = {i: [_one_line(r)] for i, r in enumerate(references)}
    scores: dict[str, float] = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores.update({f"bleu{n + 1}": float(b) for n, b in enumerate(bleu)})
    if meteor:
        if shutil.which("java"):
            from pycocoevalcap.meteor.meteor import Meteor

            scores["meteor"] = float(Meteor().compute_score(gts, res)[0])
        else:
            log.warning("radiolm: METEOR unavailable: no `java` on PATH (install a JRE, e.g. openjdk-17-jre)")
    scores["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    scores["cider"] = float(Cider().compute_score(gts, res)[0])
    return scores
