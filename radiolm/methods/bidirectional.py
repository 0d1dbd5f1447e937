"""Bidirectional learning of the visual representation with a frozen LLM (bidirectional_v2t_t2v.md in the papers).

Three branches around one frozen LLM (§3, Fig. 1), all optimising the vision encoder ``g_v`` and visual mapper
``m_v`` that produce the visual embeddings ``E_v = m_v(g_v(I))`` ``[N_p, D_L]``:

* **V2T** (Fig. 2a, Eq. 1): ``E_v`` in the prompt ``S_v2t``, ``L_VTC`` = the report's negative log-likelihood.
  At inference only this branch runs, exactly as R2GenGPT (:meth:`encode` is R2GenGPT's).
* **T2V** (Fig. 2b, Eq. 2): the report, with the view of the image appended (§3: "append this information to the
  report"), goes through a trainable text encoder ``g_t`` and textual mapper ``m_t`` to ``E_t`` ``[l, D_L]``; the
  frozen LLM reads ``S_t2v`` with ``E_t`` inside and must generate ``E_v``. The paper only sketches how ``E_g`` is
  read out; here it is **teacher-forced over the N_p visual slots**, like next-token prediction on embeddings:

      input  = [bos, S_t2v before {report}, E_t (l real tokens), S_t2v between {report} and {image},
                E_v,1 ... E_v,N_p-1]
      E_g,i  = last-layer LLM hidden state at the position just before slot i (i = 1..N_p)

  so ``E_g,1`` is read at the last instruction token and ``E_g,i`` (i > 1) at the slot holding ``E_v,i-1``: each
  generated embedding sees the report, the instruction and the true previous embeddings, never its own target.
  The slot inputs are detached by default (``t2v_teacher_inputs``; §3 names ``E_v`` the *target* of this branch),
  while the target side of ``L_TVC = 1/N_p sum_i ||E_v,i - E_g,i||^2`` keeps its gradient (Eq. 5).
* **Reconstruction** (§3): ``Z_hat_v = m'_v(E_v)`` back to the encoder space, the MAE decoder ``g_vd`` to pixels,
  ``L_REC`` = pixel MSE against the encoder's input image.

``L_TOTAL = L_VTC + lambda_1 L_TVC + lambda_2 L_REC`` (Eq. 3, both lambdas 1 in §4.1); each term is logged
(``train/vtc``, ``train/tvc``, ``train/rec``). The CLIP baseline of Table 3 (footnote 4) adds a symmetric InfoNCE
between ``E_v`` and the LLM word embeddings of the report, each projected to 512 dimensions by a linear layer.
Ablations are values: no ``text_encoder`` = no T2V, no ``image_decoder`` = no reconstruction, ``clip_dim`` set =
+CLIP.

Studies with several views (IU-Xray): V2T averages the encoder tokens over the views before the mapper (as
R2GenGPT, so that inference equals R2GenGPT's); T2V and reconstruction work per image, each with its own view
(the view classifier's prediction, ``radiolm data views``), which is what the paper's per-image view sentence asks
for. With one view per study (MIMIC-CXR) the two coincide.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from radiolm.batch import ReportBatch
from radiolm.data.transforms import ImageTransformConfig
from radiolm.errors import DataError, RadioLMError
from radiolm.methods.base import ReportGenerationModule
from radiolm.parts.image_decoder import ImageDecoderFactory
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.losses import clip_infonce, embedding_mse
from radiolm.parts.mappers import LinearMapper, MapperFactory
from radiolm.parts.text_encoder import TextEncoder
from radiolm.parts.vision import VisionEncoder, mean_over_views

__all__ = ["T2V_TEMPLATE", "VIEW_TEXT", "Bidirectional"]

# S_t2v (§3, Fig. 2b): the paper shows its shape, not its words; this mirrors R2GenGPT's S_v2t. It must hold one
# {report} (where E_t goes) and end with {image} (where the teacher-forced visual slots go).
T2V_TEMPLATE = (
    "Human: <Report>{report}</Report> Generate the chest xray image that this report describes. \nAssistant: <Img>"
    "{image}"
)
# §3: the view predicted by the classifier is appended to the report; the wording is open.
VIEW_TEXT = " View: {view}."


class Bidirectional(ReportGenerationModule):
    """V2T + T2V + image reconstruction around a frozen LLM.

    Args:
        vision_encoder: ``g_v``; MAE-large (``facebook/vit-mae-large``, §4.1) or Swin-B (Table 4).
        language_model: Frozen Llama-2-7B-chat in the paper.
        visual_mapper: ``m_v``, built as ``visual_mapper(D_v, D_L)``; a fully connected layer (§4.1).
        text_encoder: ``g_t`` (BLIP base text encoder, §4.1); ``None`` turns T2V off.
        textual_mapper: ``m_t``, built as ``textual_mapper(D_t, D_L)``; a fully connected layer (§4.1).
        image_decoder: ``g_vd`` factory ``(D_v, image size, patch size, channels)``; ``None`` turns
            reconstruction off.
        reconstruction_mapper: ``m'_v``, built as ``reconstruction_mapper(D_L, D_v)`` (§3; linear, open).
        lambda_tvc: ``lambda_1`` of Eq. 3 (§4.1: 1).
        lambda_rec: ``lambda_2`` of Eq. 3 (§4.1: 1).
        clip_dim: Projection width of the CLIP baseline (footnote 4: 512); ``None`` turns it off.
        clip_temperature: InfoNCE temperature of the CLIP baseline (open; CLIP's initial 0.07).
        lambda_clip: Weight of the CLIP loss (open; 1 like the other terms).
        t2v_template: ``S_t2v`` with ``{report}`` and a final ``{image}``.
        view_text: Appended to the report for T2V, with ``{view}`` (§3).
        view_predictions: The view classifier's cached predictions (``radiolm data views --out FILE``); ``None``
            uses the views the DataModule reports (annotation ``views`` or the image order).
        t2v_teacher_inputs: ``detached``: the visual slots fed to the LLM carry no gradient (default; the paper
            leaves it open); ``attached``: they do.
        image_resize: Short side the images are resized to before cropping (§4.1: 256); ``None``: straight resize.
        train_crop: ``random`` crops for training (§4.1: "randomly cropped to 224 x 224"); evaluation always crops
            the centre so that test scores are deterministic.
        **kwargs: :class:`ReportGenerationModule` arguments (prompt, decoding, optimizer, schedule, ...).
    """

    def __init__(
        self,
        vision_encoder: VisionEncoder,
        language_model: LanguageModel,
        visual_mapper: MapperFactory = LinearMapper,
        text_encoder: TextEncoder | None = None,
        textual_mapper: MapperFactory = LinearMapper,
        image_decoder: ImageDecoderFactory | None = None,
        reconstruction_mapper: MapperFactory = LinearMapper,
        lambda_tvc: float = 1.0,
        lambda_rec: float = 1.0,
        clip_dim: int | None = None,
        clip_temperature: float = 0.07,
        lambda_clip: float = 1.0,
        t2v_template: str = T2V_TEMPLATE,
        view_text: str = VIEW_TEXT,
        view_predictions: str | None = None,
        t2v_teacher_inputs: Literal["detached", "attached"] = "detached",
        image_resize: int | None = None,
        train_crop: Literal["random", "center"] = "center",
        **kwargs: Any,
    ) -> None:
        super().__init__(language_model=language_model, **kwargs)
        d_v, d_l = vision_encoder.out_dim, language_model.hidden_size
        self.vision_encoder = vision_encoder
        self.visual_mapper = visual_mapper(d_v, d_l)
        self.text_encoder = text_encoder
        self.textual_mapper = textual_mapper(text_encoder.out_dim, d_l) if text_encoder is not None else None
        self.image_decoder = None
        self.reconstruction_mapper = None
        if image_decoder is not None:
            self.reconstruction_mapper = reconstruction_mapper(d_l, d_v)
            self.image_decoder = image_decoder(d_v, vision_encoder.image_size, _patch_size(vision_encoder), 3)
        self.clip_visual = nn.Linear(d_l, clip_dim) if clip_dim else None
        self.clip_text = nn.Linear(d_l, clip_dim) if clip_dim else None
        self.lambda_tvc, self.lambda_rec, self.lambda_clip = lambda_tvc, lambda_rec, lambda_clip
        self.clip_temperature = clip_temperature
        if t2v_template.count("{report}") != 1 or t2v_template.count("{image}") != 1:
            raise RadioLMError(f"t2v_template needs one '{{report}}' and one '{{image}}', got {t2v_template!r}")
        self.t2v_before, rest = t2v_template.split("{report}")
        self.t2v_middle, after = rest.split("{image}") if "{image}" in rest else ("", "x")
        if after:
            raise RadioLMError(f"t2v_template must end with '{{image}}' after '{{report}}', got {t2v_template!r}")
        if "{view}" not in view_text:
            raise RadioLMError(f"view_text needs '{{view}}', got {view_text!r}")
        self.view_text, self.t2v_teacher_inputs = view_text, t2v_teacher_inputs
        self.view_predictions = view_predictions
        self._views: dict[str, list[str]] | None = None
        self.image_resize, self.train_crop = image_resize, train_crop

    @property
    def image_transform(self) -> ImageTransformConfig:
        """The encoder's size and statistics, with §4.1's resize (short side 256) and random crop."""
        return dataclasses.replace(
            self.vision_encoder.image_transform, resize=self.image_resize, train_crop=self.train_crop
        )

    def setup(self, stage: str) -> None:
        """Before training, make sure the view classifier's predictions exist for the DataModule's data (§3: a
        preprocessing step; cached, so this costs nothing once ``radiolm data views`` has run)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        annotation = getattr(datamodule, "annotation_path", None)
        if stage != "fit" or self.text_encoder is None or self.view_predictions is None or annotation is None:
            return
        if self.global_rank == 0:
            from radiolm.methods.view_classifier import ensure_view_predictions

            ensure_view_predictions(annotation, self.view_predictions, getattr(datamodule, "image_root", None))
        self.trainer.strategy.barrier("bidirectional-views")

    # -- V2T: the only branch at inference ------------------------------------------------------------------
    def encode(self, batch: ReportBatch) -> Tensor:
        """``E_v`` of each study for the LLM prompt (R2GenGPT's path: encode views, average, map).

        Returns:
            ``[B, N_p, D_L]``.
        """
        tokens, real = self._encode_views(batch)
        return self._study_embeddings(tokens, real)

    def _encode_views(self, batch: ReportBatch) -> tuple[Tensor, Tensor]:
        """Encoder tokens of every real view ``Z_v`` ``[N_real, N_p, D_v]`` and the view mask ``[B, V]``."""
        if batch.images is None or batch.view_mask is None:
            raise DataError("the bidirectional method needs X-ray images (ReportBatch.images is None)")
        return self.vision_encoder(batch.images[batch.view_mask]), batch.view_mask

    def _study_embeddings(self, tokens: Tensor, real: Tensor) -> Tensor:
        """Average the view tokens per study and map them: ``[N_real, N_p, D_v]`` -> ``[B, N_p, D_L]``."""
        b, v = real.shape
        per_view = tokens.new_zeros(b, v, *tokens.shape[1:])
        per_view[real] = tokens
        return self.visual_mapper(mean_over_views(per_view, real))

    # -- training -------------------------------------------------------------------------------------------
    def compute_losses(self, batch: ReportBatch) -> dict[str, Tensor]:
        """``{"loss": L_TOTAL, "vtc": ..., ["tvc"], ["rec"], ["clip"]}`` (Eq. 3; each term logged)."""
        tokens, real = self._encode_views(batch)
        visual = self._study_embeddings(tokens, real)  # E_v per study [B, N_p, D_L]
        inputs = self.prompt.build(self.language_model, visual, batch.reports)
        assert inputs.labels is not None
        vtc = self.language_model.loss(inputs.inputs_embeds, inputs.attention_mask, inputs.labels)  # Eq. 1
        losses = {"vtc": vtc}
        total = vtc
        if self.text_encoder is not None or self.image_decoder is not None:
            one_view = bool((real.sum(1) == 1).all())
            per_view = visual if one_view else self.visual_mapper(tokens)  # E_v per image [N_real, N_p, D_L]
            if self.text_encoder is not None:
                texts = self.t2v_texts(batch)
                generated = self.text_to_vision(texts, per_view)  # E_g [N_real, N_p, D_L]
                losses["tvc"] = embedding_mse(per_view, generated)  # Eq. 2
                total = total + self.lambda_tvc * losses["tvc"]
            if self.image_decoder is not None:
                assert self.reconstruction_mapper is not None and batch.images is not None
                reconstruction = self.image_decoder(self.reconstruction_mapper(per_view))  # [N_real, C, H, W]
                losses["rec"] = F.mse_loss(reconstruction.float(), batch.images[real].float())  # §3, L_REC
                total = total + self.lambda_rec * losses["rec"]
        if self.clip_visual is not None:
            losses["clip"] = self.clip_loss(visual, batch.reports)
            total = total + self.lambda_clip * losses["clip"]
        losses["loss"] = total
        return losses

    def t2v_texts(self, batch: ReportBatch) -> list[str]:
        """The T2V input of every real view: its study's report + the view sentence (§3), view-major per study."""
        assert batch.view_mask is not None
        texts = []
        for b, v in batch.view_mask.nonzero().tolist():
            texts.append(batch.reports[b] + self.view_text.format(view=self.view_of(batch, b, v)))
        return texts

    def view_of(self, batch: ReportBatch, b: int, v: int) -> str:
        """The view name of image ``v`` of study ``b``: the classifier's cached prediction, else the batch's."""
        if self.view_predictions is None:
            return batch.views[b][v]
        if self._views is None:
            path = Path(self.view_predictions)
            if not path.is_file():
                raise DataError(f"{path}: no view predictions; run `radiolm data views --out {path} ...` first")
            self._views = json.loads(path.read_text())["views"]
        views = self._views.get(batch.ids[b])
        if views is None or v >= len(views):
            raise DataError(
                f"{self.view_predictions}: no view for study {batch.ids[b]!r} image {v}; rerun `radiolm data views` "
                "on this data set"
            )
        return views[v]

    def text_to_vision(self, texts: list[str], target: Tensor) -> Tensor:
        """Generate ``E_g`` from the reports with the frozen LLM, teacher-forced over the visual slots.

        Args:
            texts: ``N`` reports with their view sentence.
            target: ``E_v`` ``[N, N_p, D_L]``; ``E_v,1..N_p-1`` fill the slots (see the module docstring).

        Returns:
            ``E_g`` ``[N, N_p, D_L]``.
        """
        assert self.text_encoder is not None and self.textual_mapper is not None
        lm, tok = self.language_model, self.language_model.tokenizer
        features, mask = self.text_encoder(texts)  # Z_t [N, l, D_t], [N, l]
        text = self.textual_mapper(features)  # E_t [N, l, D_L]
        bos = [tok.bos_token_id] if self.prompt.add_bos and tok.bos_token_id is not None else []
        device = target.device
        before = lm.embed(torch.tensor(bos + tok(self.t2v_before, add_special_tokens=False).input_ids, device=device))
        middle = lm.embed(torch.tensor(tok(self.t2v_middle, add_special_tokens=False).input_ids, device=device))
        dtype = before.dtype
        slots = target[:, :-1].detach() if self.t2v_teacher_inputs == "detached" else target[:, :-1]
        rows, starts = [], []
        for n, length in enumerate(mask.sum(1).tolist()):
            rows.append(torch.cat([before, text[n, :length].to(dtype), middle, slots[n].to(dtype)]))
            starts.append(len(before) + length + len(middle))
        embeds = nn.utils.rnn.pad_sequence(rows, batch_first=True)  # right padding [N, T, D_L]
        attention = torch.zeros(embeds.shape[:2], dtype=torch.long, device=device)
        for n, row in enumerate(rows):
            attention[n, : len(row)] = 1
        hidden = lm.hidden_states(embeds, attention)  # [N, T, D_L]
        n_p = target.shape[1]
        positions = torch.tensor(starts, device=device)[:, None] - 1 + torch.arange(n_p, device=device)
        return hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]))

    def clip_loss(self, visual: Tensor, reports: list[str]) -> Tensor:
        """CLIP baseline (footnote 4): mean ``E_v`` and mean LLM word embedding of the report, each projected.

        Args:
            visual: ``E_v`` ``[B, N_p, D_L]`` (mean over the tokens: the pooling is open).
            reports: ``B`` reports, truncated to the prompt's ``max_report_tokens``.
        """
        assert self.clip_visual is not None and self.clip_text is not None
        tok = self.language_model.tokenizer
        ids = tok(reports, add_special_tokens=False).input_ids
        ids = [row[: self.prompt.max_report_tokens] or [tok.eos_token_id] for row in ids]
        padded = torch.full((len(ids), max(map(len, ids))), tok.pad_token_id, dtype=torch.long)
        keep = torch.zeros(padded.shape, dtype=torch.bool)
        for i, row in enumerate(ids):
            padded[i, : len(row)], keep[i, : len(row)] = torch.tensor(row), True
        words = self.language_model.embed(padded.to(visual.device)).float()  # [B, T, D_L]
        weights = keep.to(visual.device, torch.float32)[..., None]
        text = (words * weights).sum(1) / weights.sum(1)
        return clip_infonce(self.clip_visual(visual.float().mean(1)), self.clip_text(text), self.clip_temperature)


def _patch_size(encoder: VisionEncoder) -> int:
    """The encoder's patch size (reconstruction folds one token per patch back into pixels)."""
    config = getattr(encoder.model, "config", None)
    size = getattr(config, "patch_size", None)
    if size is None:
        patch_embed = getattr(encoder.model, "patch_embed", None)
        size = getattr(patch_embed, "patch_size", None)
    if size is None:
        raise RadioLMError(
            f"image reconstruction needs a patch-token encoder (ViT-MAE), not {encoder.model.__class__.__name__}; "
            "set image_decoder: null for this encoder"
        )
    return int(size[0] if isinstance(size, (list, tuple)) else size)
