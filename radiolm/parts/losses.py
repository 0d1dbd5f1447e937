"""The papers' objectives beyond the report's likelihood, one function each (DESIGN.md, "parts/").

Each docstring gives the equation of its paper; shapes are stated at the boundary. The LM loss itself lives in
:meth:`radiolm.parts.language_model.LanguageModel.loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__: list[str] = [
    "centre_triplet_loss",
    "clip_infonce",
    "disease_prototype_loss",
    "embedding_mse",
    "multilabel_supcon_loss",
]


def embedding_mse(target: Tensor, generated: Tensor) -> Tensor:
    """Text-vision consistency of the bidirectional paper (§3, Eq. 2): ``1/N_p sum_i ||E_v,i - E_g,i||^2``.

    The squared Euclidean distance per embedding, averaged over the ``N_p`` positions and then over the batch
    (Eq. 5: the squared Frobenius norm over ``N_p``). Gradients reach both arguments, as in Eq. 5.

    Args:
        target: Visual embeddings ``E_v`` ``[B, N_p, D]``.
        generated: Embeddings the LLM generated from the report ``E_g`` ``[B, N_p, D]``.

    Returns:
        A scalar.
    """
    if target.shape != generated.shape:
        raise ValueError(f"embedding_mse: shapes differ, {tuple(target.shape)} vs {tuple(generated.shape)}")
    return (target.float() - generated.float()).pow(2).sum(-1).mean()


def clip_infonce(image: Tensor, text: Tensor, temperature: float | Tensor = 0.07) -> Tensor:
    """Symmetric InfoNCE of CLIP, the bidirectional paper's baseline (§4.2, footnote 4).

    ``L = (CE(S, I) + CE(S^T, I)) / 2`` with ``S_jk = cos(image_j, text_k) / temperature``: the j-th image and
    text are the positive pair, every other study of the batch a negative.

    Args:
        image: One vector per study ``[B, D]``.
        text: One vector per study ``[B, D]``.
        temperature: Softmax temperature (CLIP initialises its learned value to 0.07).

    Returns:
        A scalar.
    """
    if image.shape != text.shape or image.ndim != 2:
        raise ValueError(f"clip_infonce: needs two [B, D] tensors, got {tuple(image.shape)} and {tuple(text.shape)}")
    logits = F.normalize(image.float(), dim=-1) @ F.normalize(text.float(), dim=-1).T / temperature
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def disease_prototype_loss(
    features: Tensor, prototypes: Tensor, targets: Tensor, temperature: float | Tensor = 0.07, normalize: bool = True
) -> Tensor:
    """Dia-LLaMA's contrastive disease-prototype loss L_DP (§2.3, Eq. 6).

    ``L_DP = -1/(BL) sum_i sum_l log [exp(s_y) / (exp(s_y) + exp(s_(1-y)))]`` with ``s_k = D_i^l . P_k^l / tau``:
    per study and disease, a two-way softmax between the prototype of the true state (positive) and of the other
    state (negative), i.e. a cross-entropy over the two similarities.

    Args:
        features: Disease features ``D [B, L, c]``.
        prototypes: ``[L, 2, c]``: index 0 the normal prototype ``P_0^l``, index 1 the abnormal one ``P_1^l``.
        targets: ``y [B, L]``, 1 present and 0 absent (long or bool).
        temperature: ``tau`` (learnable in the paper, initial 0.07).
        normalize: Compare unit vectors (cosine similarity, the usual reading of InfoNCE with tau = 0.07);
            ``False``: the raw dot product as Eq. 6 is written.

    Returns:
        A scalar.
    """
    if features.ndim != 3 or prototypes.shape != (features.shape[1], 2, features.shape[2]):
        raise ValueError(
            f"disease_prototype_loss: features [B, L, c] and prototypes [L, 2, c], got {tuple(features.shape)} "
            f"and {tuple(prototypes.shape)}"
        )
    feats, protos = features.float(), prototypes.float()
    if normalize:
        feats, protos = F.normalize(feats, dim=-1), F.normalize(protos, dim=-1)
    logits = torch.einsum("blc,lsc->bls", feats, protos) / temperature  # [B, L, 2]
    return F.cross_entropy(logits.reshape(-1, 2), targets.reshape(-1).long())


def multilabel_supcon_loss(
    features: Tensor,
    labels: Tensor,
    temperature: float = 0.07,
    centres: Tensor | None = None,
    centre_mask: Tensor | None = None,
    centres_in_denominator: bool = True,
    normalize: bool = True,
) -> Tensor:
    """CMRG-LLM's multi-label supervised contrastive loss L^SC (§2.3, Eq. 2) and, with ``centres``, L^SC_center.

    ``L = -1/|A| sum_{i in A} 1/|S'_i| sum_{p in S'_i} log [exp(<h_i, h_p>/tau) / sum_{a in B-i} exp(<h_i, h_a>/tau)]``

    * ``S_i``: the other samples of the batch sharing at least one positive label with ``i`` (Eq. 2);
      ``S'_i = S_i + {h_d^c : e_i(d) = 1}``, the previous stages' centres of ``i``'s labels (L^SC_center, §2.3).
    * Eq. 2 as printed has no minus sign, so minimising it would push positives apart; this is the evident intent
      (SupCon [14]): minimise the negative log-ratio.
    * Eq. 2 sums over ``i``; here the sum is averaged over the anchors ``A`` that have a positive (an anchor with
      ``S'_i`` empty has no term), so ``lambda_1`` does not scale with the batch size (§2.3 leaves the scale open).
    * ``centres_in_denominator``: the centres of the valid classes also join the sum of the denominator, so each term
      is a log-softmax over batch + centres; ``False``: the denominator stays Eq. 2's batch ``B minus i`` (§2.3
      says only "similar to Eq. (2)").
    * ``normalize``: inner products of unit vectors (SupCon [14]); ``False``: the raw ``<.,.>`` of Eq. 2.

    Args:
        features: ``h^p`` ``[B, D]``.
        labels: Positive observations ``[B, K]`` (bool or 0/1).
        temperature: ``tau``.
        centres: Class centres ``h^c`` ``[K, D]`` (or ``None``: plain L^SC).
        centre_mask: ``[K]`` bool, True where a class has a centre (default: all).
        centres_in_denominator: See above.
        normalize: See above.

    Returns:
        A scalar (0 with a gradient path when no anchor has a positive).
    """
    if features.ndim != 2 or labels.shape[0] != features.shape[0]:
        raise ValueError(
            f"multilabel_supcon_loss: features [B, D] and labels [B, K], got {tuple(features.shape)} and "
            f"{tuple(labels.shape)}"
        )
    h = F.normalize(features.float(), dim=-1) if normalize else features.float()
    positive = labels.bool()
    eye = torch.eye(len(h), dtype=torch.bool, device=h.device)
    logits = (h @ h.T / temperature).masked_fill(eye, float("-inf"))  # [B, B], a != i
    pos = (positive.float() @ positive.float().T > 0) & ~eye  # [B, B]: shares a label, not itself
    denominator = logits
    if centres is not None:
        if centres.shape != (labels.shape[1], features.shape[1]):
            raise ValueError(
                f"multilabel_supcon_loss: centres must be [K, D] = {(labels.shape[1], features.shape[1])}, got "
                f"{tuple(centres.shape)}"
            )
        valid = torch.ones(len(centres), dtype=torch.bool, device=h.device) if centre_mask is None else centre_mask
        c = F.normalize(centres.float(), dim=-1) if normalize else centres.float()
        centre_logits = (h @ c.T / temperature).masked_fill(~valid[None], float("-inf"))  # [B, K]
        logits = torch.cat([logits, centre_logits], dim=1)
        pos = torch.cat([pos, positive & valid[None]], dim=1)
        if centres_in_denominator:
            denominator = logits
    log_prob = logits - torch.logsumexp(denominator, dim=1, keepdim=True)
    counts = pos.sum(1)
    anchors = counts > 0
    if not anchors.any():
        return features.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~pos, 0.0)).sum(1)[anchors] / counts[anchors]
    return per_anchor.mean()


def centre_triplet_loss(
    features: Tensor, related: Tensor, no_finding: Tensor, margin: float = 0.5, normalize: bool = True
) -> Tensor:
    """CMRG-LLM's triplet loss L^TP for findings unique to CT (§2.3).

    ``L = mean_i max(<h_0^c, h_i> - <h_d(i)^c, h_i> + delta, 0)``: each CT feature is pulled toward the centre of
    its most related X-ray class ``h_d(i)^c`` and pushed from the "no finding" centre ``h_0^c`` with margin
    ``delta``. As printed the two inner products are in the other order, which would pull features toward "no
    finding"; the text says the opposite ("drawn towards the most relevant disease class center ... and repelled
    from the no findings center"), which is what this implements (the FaceNet [29] form with similarities).

    Args:
        features: CT features ``h^p`` ``[B, D]`` of the samples with a CT-only finding.
        related: ``h_d(i)^c`` ``[B, D]``, the related X-ray class centre of each sample.
        no_finding: ``h_0^c`` ``[D]``.
        margin: ``delta``.
        normalize: Inner products of unit vectors, as in :func:`multilabel_supcon_loss`.

    Returns:
        A scalar (0 with a gradient path for an empty batch).
    """
    if features.shape != related.shape or no_finding.shape != features.shape[1:]:
        raise ValueError(
            f"centre_triplet_loss: features and related [B, D], no_finding [D], got {tuple(features.shape)}, "
            f"{tuple(related.shape)}, {tuple(no_finding.shape)}"
        )
    if len(features) == 0:
        return features.sum() * 0.0
    h, pos, neg = features.float(), related.float(), no_finding.float()
    if normalize:
        h, pos, neg = F.normalize(h, dim=-1), F.normalize(pos, dim=-1), F.normalize(neg, dim=-1)
    return torch.relu(h @ neg - (h * pos).sum(-1) + margin).mean()
