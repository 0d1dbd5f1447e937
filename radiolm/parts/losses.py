"""The papers' objectives beyond the report's likelihood, one function each (DESIGN.md, "parts/").

Each docstring gives the equation of its paper; shapes are stated at the boundary. The LM loss itself lives in
:meth:`radiolm.parts.language_model.LanguageModel.loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__: list[str] = ["clip_infonce", "disease_prototype_loss", "embedding_mse"]


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
