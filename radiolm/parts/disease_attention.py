"""Disease-level features from patch features: Dia-LLaMA's disease-aware attention (§2.2, Eq. 5) and the
average pooling its ablation replaces it with (§3.3, "the average-pooled patch features").

Both map patch features ``A_i [B, M, c]`` to disease features ``D_i [B, L, c]``, one vector per disease.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["DiseaseAwareAttention", "MeanPoolDiseaseFeatures"]


class DiseaseAwareAttention(nn.Module):
    """``D_i = sum_m (softmax(W_D) * A_i)_m`` with learnable ``W_D [L, M, 1]``, softmax over the M patches (Eq. 5).

    The weights are static (one learned map over patch positions per disease), not computed from the input.

    Args:
        num_diseases: ``L``.
        num_patches: ``M`` (1024 for RadFM's ViT3D at 256 x 256 x 64).
        init_std: Standard deviation of the normal initialisation of ``W_D``; the paper does not say. 0 starts
            every disease at the uniform average (the ablation's mean pooling); the default 0.02 breaks the
            symmetry between diseases from the first step.
    """

    def __init__(self, num_diseases: int, num_patches: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_diseases, num_patches, 1) * init_std)  # W_D [L, M, 1]

    def attention(self) -> Tensor:
        """``softmax(W_D)`` over patches: ``[L, M, 1]``, each disease's weights sum to 1."""
        return self.weight.softmax(dim=1)

    def forward(self, patches: Tensor) -> Tensor:
        """``A_i [B, M, c]`` -> ``D_i [B, L, c]``."""
        if patches.shape[1] != self.weight.shape[1]:
            raise ValueError(
                f"disease-aware attention was built for {self.weight.shape[1]} patches, got {patches.shape[1]}"
            )
        weights = self.attention().squeeze(-1).to(patches.dtype)  # [L, M]
        return torch.einsum("lm,bmc->blc", weights, patches)


class MeanPoolDiseaseFeatures(nn.Module):
    """The DAA-off ablation (§3.3): the average-pooled patch feature, repeated for each of the L diseases.

    Args:
        num_diseases: ``L``.
    """

    def __init__(self, num_diseases: int) -> None:
        super().__init__()
        self.num_diseases = num_diseases

    def forward(self, patches: Tensor) -> Tensor:
        """``[B, M, c]`` -> ``[B, L, c]``."""
        return patches.mean(dim=1, keepdim=True).expand(-1, self.num_diseases, -1)
