"""CMRG-LLM's learnable prompts (``../shared/papers/cmrg_llm_continual.md`` §2.2, §2.3).

* :class:`QueryAggregator` is the multi-head attention block ``M(q, f_k, f_k; mu)`` at the encoder width: learnable
  queries ``q`` (``L_q x C``) attend to an image's encoder tokens ``f_k`` and give ``f_k^q`` (``L_q x C``).
* :class:`DomainPrompt` holds what one domain owns: its domain token ``f^t`` (``1 x`` LLM width), its queries ``q``,
  the LayerNorm ``gamma, beta`` of its visual prompt and, unless it shares one, its projection ``P`` (§2.3: P is
  kept fixed from XE1 to XE2).
* :class:`DomainPromptSet` is every domain's prompt by name and builds the visual prompt
  ``f_i^v = LN(1/k_i sum_k P(M(q, f_k, f_k)))`` of a study (§2.2).

The queries live in the domain, the attention weights ``mu`` in the aggregator: §2.3 freezes ``M`` after XE1 and
gives every later domain new queries.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from radiolm.parts.visual_prefix import pool_views

__all__ = ["DomainPrompt", "DomainPromptSet", "QueryAggregator"]


class QueryAggregator(nn.Module):
    """``M``: multi-head attention with the queries as Q and an image's tokens as K and V (§2.2, after BLIP-2 [16]).

    Args:
        dim: Encoder width ``C`` (Swin-B: 1024).
        heads: Attention heads; must divide ``dim`` (§2.2 leaves it open; 8).
        dropout: Attention dropout (§2.2 leaves it open; 0).
    """

    def __init__(self, dim: int, heads: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"QueryAggregator: heads={heads} must divide the encoder width {dim}; set heads")
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def forward(self, queries: Tensor, tokens: Tensor) -> Tensor:
        """``queries [L_q, C]``, ``tokens [N, L_f, C]`` -> ``f^q [N, L_q, C]``."""
        q = queries.to(tokens.dtype).expand(tokens.shape[0], -1, -1)
        return self.attention(q, tokens, tokens, need_weights=False)[0]


class DomainPrompt(nn.Module):
    """The parameters one domain owns (§2.2, §2.3).

    Args:
        encoder_dim: ``C``.
        llm_dim: The LLM width.
        num_queries: ``L_q``.
        own_projection: Whether this domain has its own ``P`` (XE2 shares XE1's, §2.3).
        token_std: Initial scale of ``f^t`` (the LLM's embedding scale, so the token starts like a word).
    """

    def __init__(
        self, encoder_dim: int, llm_dim: int, num_queries: int, own_projection: bool = True, token_std: float = 0.02
    ) -> None:
        super().__init__()
        self.domain_token = nn.Parameter(torch.randn(1, llm_dim) * token_std)  # f^t [1, D]
        self.queries = nn.Parameter(torch.randn(num_queries, encoder_dim) * encoder_dim**-0.5)  # q [L_q, C]
        self.norm = nn.LayerNorm(llm_dim)  # gamma, beta
        self.projection = nn.Linear(encoder_dim, llm_dim) if own_projection else None  # P (sigma)


class DomainPromptSet(nn.Module):
    """Every domain's :class:`DomainPrompt`, by name, in training order.

    Args:
        domains: Domain names in training order (``XE1, XE2, XC, CTC`` in the paper).
        encoder_dim: ``C``.
        llm_dim: The LLM width.
        num_queries: ``L_q`` (§2.2 leaves it open; 32 as BLIP-2's Q-Former [16]).
        share_projection: ``{domain: earlier domain}`` whose ``P`` the domain uses (§2.3: ``{XE2: XE1}``).
        token_std: Initial scale of the domain tokens.
    """

    def __init__(
        self,
        domains: list[str],
        encoder_dim: int,
        llm_dim: int,
        num_queries: int = 32,
        share_projection: dict[str, str] | None = None,
        token_std: float = 0.02,
    ) -> None:
        super().__init__()
        share = dict(share_projection or {})
        if len(set(domains)) != len(domains) or not domains:
            raise ValueError(f"domains must be distinct names, at least one, got {domains}")
        for domain, owner in share.items():
            if domain not in domains or owner not in domains or domains.index(owner) >= domains.index(domain):
                raise ValueError(
                    f"share_projection {domain}: {owner}: both must be domains ({domains}) and {owner} earlier"
                )
            if owner in share:
                raise ValueError(f"share_projection: {owner} shares a projection itself; name its owner instead")
        self.domains = list(domains)
        self.projection_owner = {d: share.get(d, d) for d in domains}
        self.prompts = nn.ModuleDict(
            {d: DomainPrompt(encoder_dim, llm_dim, num_queries, d not in share, token_std) for d in domains}
        )

    def __getitem__(self, domain: str) -> DomainPrompt:
        if domain not in self.prompts:
            raise KeyError(f"unknown domain {domain!r}; the domains are {self.domains}")
        return self.prompts[domain]  # type: ignore[return-value]

    def projection(self, domain: str) -> nn.Linear:
        """``P`` of ``domain`` (its own, or the one it shares)."""
        projection = self[self.projection_owner[domain]].projection
        assert projection is not None
        return projection

    @torch.no_grad()
    def start_from(self, domain: str, previous: str) -> None:
        """``domain``'s own parameters (``f^t``, ``q``, LN and, if it owns one, ``P``) become copies of what
        ``previous`` uses: a new domain starts from the last one's prompt instead of random values."""
        new, old = self[domain], self[previous]
        new.domain_token.copy_(old.domain_token)
        new.queries.copy_(old.queries)
        new.norm.load_state_dict(old.norm.state_dict())
        if new.projection is not None:
            new.projection.load_state_dict(self.projection(previous).state_dict())

    def visual_prompt(
        self,
        domain: str,
        aggregator: QueryAggregator,
        tokens: Tensor,
        encoded: Tensor,
        queries_from: str | None = None,
        projection_from: str | None = None,
    ) -> Tensor:
        """``f_i^v = LN(1/k_i sum_k P(M(q, f_k, f_k)))`` (§2.2): views averaged after ``P``.

        Args:
            domain: Whose LayerNorm to use (and ``q``, ``P`` unless named below).
            aggregator: ``M``.
            tokens: Encoder tokens of every encoded image ``[N, L_f, C]``, study by study.
            encoded: ``[B, V]`` bool, True where an image of the study was encoded (``N`` Trues).
            queries_from: Whose ``q`` (CMRG-LLM's Table 2 ablation shares the first domain's).
            projection_from: Whose ``P`` (mapped to its owner as ``share_projection`` says).

        Returns:
            ``[B, L_q, D]``.
        """
        queries = self[queries_from or domain].queries
        projected = self.projection(projection_from or domain)(aggregator(queries, tokens))  # [N, L_q, D]
        return self[domain].norm(pool_views(projected, encoded))

    def domain_token(self, domain: str, batch_size: int, dtype: torch.dtype) -> Tensor:
        """``f^t`` for every study ``[B, 1, D]``."""
        return self[domain].domain_token.to(dtype).expand(batch_size, -1, -1)
