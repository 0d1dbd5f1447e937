"""t-SNE (van der Maaten & Hinton 2008, CMRG-LLM's reference [21]) of feature vectors to 2-D, for Fig. 2.

scikit-learn's ``TSNE`` is used when scikit-learn is installed (it is not a dependency of the suite); otherwise
:func:`exact_tsne`, a small exact t-SNE in torch: Gaussian affinities at a given perplexity (a binary search for
each point's bandwidth), symmetrised ``P``, Student-t ``Q``, gradient descent with momentum, per-coordinate gains
and early exaggeration, the schedule of the paper's Algorithm 1 and of scikit-learn's defaults (exaggeration 12
for 250 iterations, momentum 0.5 then 0.8, learning rate ``max(N / 12 / 4, 50)``). It is O(N^2) in time and
memory: meant for the few thousand studies of a test split, not for more.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["exact_tsne", "tsne"]

EXAGGERATION = 12.0
EXAGGERATION_ITERATIONS = 250


def _affinities(points: Tensor, perplexity: float, steps: int = 64) -> Tensor:
    """Symmetric joint probabilities ``P`` ``[N, N]`` (float64) whose rows have the given perplexity."""
    n = len(points)
    distances = torch.cdist(points, points).pow(2)
    distances.fill_diagonal_(0)
    distances = distances / distances.sum().div(n * (n - 1)).clamp(min=1e-12)  # scale-free: beta ~ 1 to start
    target = math.log(perplexity)
    low = torch.full((n, 1), -math.inf, dtype=points.dtype)
    high = torch.full((n, 1), math.inf, dtype=points.dtype)
    beta = torch.ones(n, 1, dtype=points.dtype)  # 1 / (2 sigma^2) per row, bisected
    eye = torch.eye(n, dtype=torch.bool)
    for _ in range(steps):
        logits = (-distances * beta).masked_fill(eye, -math.inf)
        conditional = torch.softmax(logits, dim=1)
        entropy = -(conditional * torch.log(conditional.clamp(min=1e-300))).sum(1, keepdim=True)
        too_flat = entropy > target  # the kernel is too wide: a larger beta
        low = torch.where(too_flat, beta, low)
        high = torch.where(too_flat, high, beta)
        up = torch.where(torch.isinf(high), beta * 2, (beta + high) / 2)
        down = torch.where(torch.isinf(low), beta / 2, (beta + low) / 2)
        beta = torch.where(too_flat, up, down)
    logits = (-distances * beta).masked_fill(eye, -math.inf)
    conditional = torch.softmax(logits, dim=1)
    joint = (conditional + conditional.T) / (2 * n)
    return joint.clamp(min=1e-12)


def exact_tsne(
    points: Tensor, perplexity: float = 30.0, iterations: int = 1000, seed: int = 0, learning_rate: float | None = None
) -> Tensor:
    """Exact t-SNE of ``points`` ``[N, F]`` to ``[N, 2]`` (float32).

    Args:
        points: The features (any float dtype; computed in float64).
        perplexity: Effective number of neighbours; lowered to ``(N - 1) / 3`` for small ``N``.
        iterations: Gradient steps (the first 250, at most, with early exaggeration).
        seed: Seed of the initial embedding (``N(0, 1e-4)``).
        learning_rate: ``None``: ``max(N / 12 / 4, 50)``.
    """
    n = len(points)
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 points, got {n}")
    x = points.detach().to(torch.float64).cpu()
    joint = _affinities(x, min(perplexity, (n - 1) / 3))
    generator = torch.Generator().manual_seed(seed)
    y = torch.randn(n, 2, generator=generator, dtype=torch.float64) * 1e-2
    velocity = torch.zeros_like(y)
    gains = torch.ones_like(y)
    rate = learning_rate if learning_rate is not None else max(n / EXAGGERATION / 4, 50.0)
    early = min(EXAGGERATION_ITERATIONS, iterations // 4)
    for step in range(iterations):
        exaggeration = EXAGGERATION if step < early else 1.0
        momentum = 0.5 if step < early else 0.8
        kernel = 1.0 / (1.0 + torch.cdist(y, y).pow(2))  # Student-t, one degree of freedom
        kernel.fill_diagonal_(0)
        q = (kernel / kernel.sum()).clamp(min=1e-12)
        weights = (exaggeration * joint - q) * kernel  # [N, N]
        gradient = 4 * (weights.sum(1, keepdim=True) * y - weights @ y)
        same_sign = (gradient > 0) == (velocity > 0)
        gains = torch.where(same_sign, gains * 0.8, gains + 0.2).clamp(min=0.01)
        velocity = momentum * velocity - rate * gains * gradient
        y = y + velocity
        y = y - y.mean(0)
    return y.float()


def tsne(points: Tensor, perplexity: float = 30.0, seed: int = 0, iterations: int = 1000) -> tuple[Tensor, str]:
    """``points`` ``[N, F]`` -> ``([N, 2], backend)``: scikit-learn's ``TSNE`` if installed, else :func:`exact_tsne`.

    The backend is ``"sklearn"`` or ``"torch-exact"``; analyses write it next to the figure."""
    perplexity = min(perplexity, (len(points) - 1) / 3)
    try:
        from sklearn.manifold import TSNE  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return exact_tsne(points, perplexity, iterations, seed), "torch-exact"
    embedded = TSNE(
        n_components=2, perplexity=perplexity, random_state=seed, init="pca", max_iter=max(iterations, 250)
    ).fit_transform(points.detach().double().cpu().numpy())
    return torch.from_numpy(embedded).float(), "sklearn"
