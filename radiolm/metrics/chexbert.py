"""CheXbert labeler (Smit et al. 2020) loading a user-provided ``chexbert.pth``; also the report embedding of RadCliQ.

The published architecture: a BERT-base encoder; the final hidden state of ``[CLS]`` goes through dropout (p = 0.1)
into 14 linear heads, 13 with four classes (blank, positive, negative, uncertain) and "No Finding" with two (blank,
positive). The heads follow :data:`radiolm.data.labels.CHEXPERT_14`, the order of the CheXbert code. Report text is
cleaned as CheXbert does (strip, newlines to spaces, runs of whitespace to one) and cut at 512 tokens
(``[CLS]`` + 510 word pieces + ``[SEP]``).

Files the user provides (these machines reach no model hub; ``docs/metrics_models.md`` says where to get them):

* ``checkpoint``: ``chexbert.pth`` of the CheXbert authors. Its ``model_state_dict`` has keys under ``module.`` (it was
  saved from ``nn.DataParallel``); files re-saved by other tools use ``model.`` or no prefix. All three load. It is
  read with ``torch.load(weights_only=True)``: no pickled code runs.
* ``tokenizer``: the ``bert-base-uncased`` tokenizer, as a local folder with ``vocab.txt`` (or the ``vocab.txt`` file
  itself), or the hub id when it is in the Hugging Face cache.
* ``config_path`` (optional): a BERT ``config.json``; without it the encoder is bert-base-uncased's shape
  (``BertConfig()`` defaults), so nothing else is downloaded. Tests pass a tiny config.

Outputs follow :class:`radiolm.metrics.chexpert_labeler.RuleLabeler`: per report 14 values, ``1`` positive, ``0``
negative, ``-1`` uncertain, ``None`` blank (No Finding: ``1`` or ``None``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from radiolm.data.labels import CHEXPERT_14, NEGATIVE, POSITIVE, UNCERTAIN
from radiolm.errors import DataError, MissingAssetError

__all__ = [
    "CLASS_TO_LABEL",
    "NO_FINDING_CLASS_TO_LABEL",
    "ChexbertLabeler",
    "ChexbertModel",
    "clean_report",
    "semb_scores",
]

Label = int | None

CLASS_TO_LABEL: tuple[Label, ...] = (None, POSITIVE, NEGATIVE, UNCERTAIN)
"""Head class index -> label for the 13 four-class heads (CheXbert's ``label.py``: 0 blank, 1 positive, ...)."""
NO_FINDING_CLASS_TO_LABEL: tuple[Label, ...] = (None, POSITIVE)
"""Head class index -> label for the two-class "No Finding" head."""

_MAX_TOKENS = 512
_PREFIXES = ("module.", "model.")
_NON_PERSISTENT = ("bert.embeddings.position_ids", "bert.embeddings.token_type_ids")  # saved by old transformers


class ChexbertModel(nn.Module):
    """BERT encoder + 14 linear heads on ``[CLS]``; parameter names match the released checkpoint (no prefix).

    Args:
        config: A ``transformers.BertConfig`` (``BertConfig()`` is bert-base-uncased).
        dropout: Dropout before the heads (0.1 in CheXbert; inactive in eval mode).
    """

    def __init__(self, config: Any, dropout: float = 0.1) -> None:
        from transformers import BertModel

        super().__init__()
        self.bert = BertModel(config)  # with the pooler: the released state dict has its weights
        self.dropout = nn.Dropout(dropout)
        hidden = config.hidden_size
        heads = [nn.Linear(hidden, len(CLASS_TO_LABEL)) for _ in range(len(CHEXPERT_14) - 1)]
        self.linear_heads = nn.ModuleList([*heads, nn.Linear(hidden, len(NO_FINDING_CLASS_TO_LABEL))])

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Encode a batch.

        Args:
            input_ids: ``[B, L]`` word-piece ids, ``[CLS] ... [SEP]``, right-padded.
            attention_mask: ``[B, L]``, 1 on real tokens.

        Returns:
            The ``[CLS]`` hidden state ``[B, H]`` and 14 logit tensors (``[B, 4]`` x 13, then ``[B, 2]``).
        """
        cls = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
        dropped = self.dropout(cls)
        return cls, [head(dropped) for head in self.linear_heads]


def _state_dict(raw: object, checkpoint: str) -> dict[str, Tensor]:
    """The model weights of a loaded ``chexbert.pth``: unwrap, strip ``module.`` / ``model.``, drop stale buffers."""
    state = raw
    if isinstance(state, dict):
        for key in ("model_state_dict", "state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DataError(
            f"{checkpoint}: not a CheXbert checkpoint (expected a state dict, or one under 'model_state_dict')"
        )
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        name = str(key)
        while name.startswith(_PREFIXES):
            name = name.split(".", 1)[1]
        name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name))
        if name not in _NON_PERSISTENT:
            out[name] = value
    return out


def _load_tokenizer(tokenizer: str) -> Any:
    from transformers import BertTokenizer

    try:
        if Path(tokenizer).is_file():  # a vocab.txt
            return BertTokenizer(vocab_file=tokenizer, do_lower_case=True)
        return BertTokenizer.from_pretrained(tokenizer)
    except (OSError, ValueError) as e:
        raise MissingAssetError(
            "CheXbert tokenizer", tokenizer, "tokenizer", "a bert-base-uncased folder with vocab.txt is needed"
        ) from e


def clean_report(text: str) -> str:
    """CheXbert's text cleaning: strip, newlines to spaces, whitespace runs to one space."""
    return re.sub(r"\s+", " ", text.strip().replace("\n", " ")).strip()


class ChexbertLabeler:
    """The CheXbert labeler: CheXpert-14 labels and ``[CLS]`` embeddings of report texts.

    Args:
        checkpoint: Path to ``chexbert.pth``.
        tokenizer: bert-base-uncased tokenizer: a local folder, a ``vocab.txt`` file, or a cached hub id.
        device: Where the model runs.
        batch_size: Reports per forward pass (sorted by length to pad little).
        config_path: A BERT ``config.json``; ``None`` is bert-base-uncased's shape.

    Raises:
        MissingAssetError: the checkpoint, the tokenizer or the config is not on this machine.
        DataError: the checkpoint is not a CheXbert state dict or does not fit the config.
    """

    def __init__(
        self,
        checkpoint: str,
        tokenizer: str = "bert-base-uncased",
        device: str = "cpu",
        batch_size: int = 32,
        config_path: str | None = None,
    ) -> None:
        from transformers import BertConfig

        if not Path(checkpoint).is_file():
            raise MissingAssetError(
                "CheXbert checkpoint", checkpoint, "checkpoint", "file not found; see docs/metrics_models.md"
            )
        if config_path is not None and not Path(config_path).is_file():
            raise MissingAssetError("CheXbert BERT config", config_path, "config_path", "file not found")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.tokenizer = _load_tokenizer(tokenizer)
        config = BertConfig.from_json_file(config_path) if config_path else BertConfig()
        if len(self.tokenizer) > config.vocab_size:
            raise DataError(
                f"tokenizer {tokenizer} has {len(self.tokenizer)} tokens; the BERT config only {config.vocab_size}"
            )
        try:
            raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as e:  # an unpickling error: not a plain state dict
            raise DataError(f"{checkpoint}: cannot be read as a weights-only checkpoint ({type(e).__name__})") from e
        model = ChexbertModel(config)
        result = model.load_state_dict(_state_dict(raw, checkpoint), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise DataError(
                f"{checkpoint}: does not match the CheXbert architecture (missing {result.missing_keys[:3]}, "
                f"unexpected {result.unexpected_keys[:3]}); pass config_path when the encoder is not bert-base"
            )
        self.model = model.to(device).eval()
        self.device, self.batch_size = device, batch_size
        self.max_tokens = min(_MAX_TOKENS, int(config.max_position_embeddings))

    @torch.inference_mode()
    def _run(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """``[N, H]`` ``[CLS]`` embeddings and ``[N, 14]`` class indices, in input order."""
        encoded = [
            self.tokenizer(clean_report(t), truncation=True, max_length=self.max_tokens)["input_ids"] for t in texts
        ]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        hidden = self.model.bert.config.hidden_size
        embeddings = torch.zeros(len(texts), hidden)
        classes = torch.zeros(len(texts), len(CHEXPERT_14), dtype=torch.long)
        pad = self.tokenizer.pad_token_id or 0
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            longest = max(len(encoded[i]) for i in rows)
            ids = torch.full((len(rows), longest), pad, dtype=torch.long)
            mask = torch.zeros(len(rows), longest, dtype=torch.long)
            for j, i in enumerate(rows):
                ids[j, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[j, : len(encoded[i])] = 1
            cls, logits = self.model(ids.to(self.device), mask.to(self.device))
            embeddings[rows] = cls.float().cpu()
            classes[rows] = torch.stack([head.argmax(dim=-1) for head in logits], dim=1).cpu()
        return embeddings, classes

    @staticmethod
    def _labels(classes: Tensor) -> list[list[Label]]:
        maps = [CLASS_TO_LABEL] * (len(CHEXPERT_14) - 1) + [NO_FINDING_CLASS_TO_LABEL]
        return [[maps[k][int(c)] for k, c in enumerate(row)] for row in classes]

    def __call__(self, texts: Sequence[str]) -> list[list[Label]]:
        """CheXpert-14 labels of each text (1 / 0 / -1 / None), in :data:`CHEXPERT_14` order."""
        return self._labels(self._run(texts)[1])

    def embed(self, texts: Sequence[str]) -> Tensor:
        """``[N, H]`` final ``[CLS]`` hidden states (H = 768 for CheXbert), the report embedding of RadCliQ's s_emb."""
        return self._run(texts)[0]

    def label_and_embed(self, texts: Sequence[str]) -> tuple[list[list[Label]], Tensor]:
        """Labels and embeddings from one forward pass."""
        embeddings, classes = self._run(texts)
        return self._labels(classes), embeddings

    def semb(self, predictions: Sequence[str], references: Sequence[str]) -> list[float]:
        """Per-pair s_emb (Yu et al. 2023): cosine similarity of the CheXbert embeddings of prediction and reference."""
        if len(predictions) != len(references):
            raise ValueError(f"s_emb: {len(predictions)} predictions but {len(references)} references")
        return semb_scores(self.embed(predictions), self.embed(references))


def semb_scores(pred_embeddings: Tensor, ref_embeddings: Tensor) -> list[float]:
    """Row-wise cosine similarity of ``[N, H]`` embeddings (0 where an embedding is all zeros)."""
    if pred_embeddings.shape != ref_embeddings.shape or pred_embeddings.dim() != 2:
        raise ValueError(f"s_emb: shapes {tuple(pred_embeddings.shape)} and {tuple(ref_embeddings.shape)} differ")
    a, b = pred_embeddings.double(), ref_embeddings.double()
    norms = a.norm(dim=1) * b.norm(dim=1)
    dots = (a * b).sum(dim=1)
    return [float(d / n) if n > 0 else 0.0 for d, n in zip(dots, norms, strict=True)]
