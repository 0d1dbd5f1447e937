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
R2GenGPT, so that inference equals R2GenGPT's); T2V and reconstruction work per image, each with its own view name
from ``ReportBatch.views``, which is what the paper's per-image view sentence asks for. The DataModule fills those
names; the view classifier of §3 (:mod:`radiolm.data.builders.views`, ``radiolm data views``) is a
preprocessing step whose predictions it reads. With one view per study (MIMIC-CXR) the two coincide.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from radiolm.batch import ReportBatch, require_images
from radiolm.data.transforms import ImageTransformConfig
from radiolm.errors import BatchError, RadioLMError
from radiolm.methods.base import ReportGenerationModule
from radiolm.parts.image_decoder import ImageDecoderFactory
from radiolm.parts.language_model import LanguageModel
from radiolm.parts.losses import clip_infonce, embedding_mse
from radiolm.parts.mappers import LinearMapper, MapperFactory
from radiolm.parts.prompt import MaskedEmbeddings, PromptTemplate
from radiolm.parts.text_encoder import TextEncoder
from radiolm.parts.vision import VisionEncoder
from radiolm.parts.visual_prefix import ViewPooling, encode_views, pool_views

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
        image_decoder: ``g_vd`` factory ``(D_v, encoder patch grid, patch size, channels)``; ``None`` turns
            reconstruction off.
        reconstruction_mapper: ``m'_v``, built as ``reconstruction_mapper(D_L, D_v)`` (§3; linear, open).
        lambda_tvc: ``lambda_1`` of Eq. 3 (§4.1: 1).
        lambda_rec: ``lambda_2`` of Eq. 3 (§4.1: 1).
        clip_dim: Projection width of the CLIP baseline (footnote 4: 512); ``None`` turns it off.
        clip_temperature: InfoNCE temperature of the CLIP baseline (open; CLIP's initial 0.07).
        lambda_clip: Weight of the CLIP loss (open; 1 like the other terms).
        t2v_template: ``S_t2v`` with ``{report}`` and a final ``{image}``.
        view_text: Appended to the report for T2V, with ``{view}`` (§3), the image's name in ``ReportBatch.views``.
        t2v_teacher_inputs: ``detached``: the visual slots fed to the LLM carry no gradient (default; the paper
            leaves it open); ``attached``: they do.
        image_resize: Short side the images are resized to before cropping (§4.1: 256); ``None``: straight resize.
        train_crop: ``random`` crops for training (§4.1: "randomly cropped to 224 x 224"); evaluation always crops
            the centre so that test scores are deterministic.
        view_pooling: How V2T pools the views of a study: ``mean`` (R2GenGPT's) or ``first``.
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
        t2v_teacher_inputs: Literal["detached", "attached"] = "detached",
        image_resize: int | None = None,
        train_crop: Literal["random", "center"] = "center",
        view_pooling: ViewPooling = "mean",
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
            if vision_encoder.patch_size is None:
                raise RadioLMError(
                    "image reconstruction needs a patch-token encoder (ViT-MAE), not "
                    f"{vision_encoder.model.__class__.__name__}; set image_decoder: null for this encoder"
                )
            self.reconstruction_mapper = reconstruction_mapper(d_l, d_v)
            self.image_decoder = image_decoder(d_v, vision_encoder.patch_grid, vision_encoder.patch_size, 3)
        self.clip_visual = nn.Linear(d_l, clip_dim) if clip_dim else None
        self.clip_text = nn.Linear(d_l, clip_dim) if clip_dim else None
        self.lambda_tvc, self.lambda_rec, self.lambda_clip = lambda_tvc, lambda_rec, lambda_clip
        self.clip_temperature = clip_temperature
        if t2v_template.count("{report}") != 1 or t2v_template.count("{image}") != 1:
            raise RadioLMError(f"t2v_template needs one '{{report}}' and one '{{image}}', got {t2v_template!r}")
        if not t2v_template.endswith("{image}") or t2v_template.index("{image}") < t2v_template.index("{report}"):
            raise RadioLMError(f"t2v_template must end with '{{image}}' after '{{report}}', got {t2v_template!r}")
        self.t2v_prompt = PromptTemplate(t2v_template, add_bos=self.prompt.add_bos)  # S_t2v
        if "{view}" not in view_text:
            raise RadioLMError(f"view_text needs '{{view}}', got {view_text!r}")
        self.view_text, self.t2v_teacher_inputs = view_text, t2v_teacher_inputs
        self.image_resize, self.train_crop, self.view_pooling = image_resize, train_crop, view_pooling

    @property
    def image_transform(self) -> ImageTransformConfig:
        """The encoder's size and statistics, with §4.1's resize (short side 256) and random crop."""
        return dataclasses.replace(
            self.vision_encoder.image_transform, resize=self.image_resize, train_crop=self.train_crop
        )

    # -- V2T: the only branch at inference ------------------------------------------------------------------
    def encode(self, batch: ReportBatch) -> Tensor:
        """``E_v`` of each study for the LLM prompt (R2GenGPT's path: encode views, average, map).

        Returns:
            ``[B, N_p, D_L]``.
        """
        return self.encode_images(batch)[0]

    def encode_images(self, batch: ReportBatch) -> tuple[Tensor, Tensor, Tensor]:
        """``E_v`` per study ``[B, N_p, D_L]``, the encoder tokens ``Z_v`` of every encoded image
        ``[N, N_p, D_v]``, and which images those are ``[B, V]`` (bool)."""
        images, view_mask = require_images(batch, "Bidirectional")
        tokens, encoded = encode_views(self.vision_encoder, images, view_mask, self.view_pooling)
        return self.visual_mapper(pool_views(tokens, encoded, self.view_pooling)), tokens, encoded

    # -- training -------------------------------------------------------------------------------------------
    def compute_losses(self, batch: ReportBatch) -> dict[str, Tensor]:
        """``{"loss": L_TOTAL, "vtc": ..., ["tvc"], ["rec"], ["clip"]}`` (Eq. 3; each term logged)."""
        visual, tokens, encoded = self.encode_images(batch)  # E_v per study [B, N_p, D_L]
        inputs = self.prompt.build(self.language_model, visual, batch.reports)
        assert inputs.labels is not None
        vtc = self.language_model.loss(inputs.inputs_embeds, inputs.attention_mask, inputs.labels)  # Eq. 1
        losses = {"vtc": vtc}
        total = vtc
        if self.text_encoder is not None or self.image_decoder is not None:
            one_view = bool((encoded.sum(1) == 1).all())
            per_view = visual if one_view else self.visual_mapper(tokens)  # E_v per image [N, N_p, D_L]
            if self.text_encoder is not None:
                generated = self.text_to_vision(self.t2v_texts(batch, encoded), per_view)  # E_g [N, N_p, D_L]
                losses["tvc"] = embedding_mse(per_view, generated)  # Eq. 2
                total = total + self.lambda_tvc * losses["tvc"]
            if self.image_decoder is not None:
                assert self.reconstruction_mapper is not None and batch.images is not None
                reconstruction = self.image_decoder(self.reconstruction_mapper(per_view))  # [N, C, H, W]
                losses["rec"] = F.mse_loss(reconstruction.float(), batch.images[encoded].float())  # §3, L_REC
                total = total + self.lambda_rec * losses["rec"]
        if self.clip_visual is not None:
            losses["clip"] = self.clip_loss(visual, batch.reports)
            total = total + self.lambda_clip * losses["clip"]
        losses["loss"] = total
        return losses

    def t2v_texts(self, batch: ReportBatch, encoded: Tensor | None = None) -> list[str]:
        """The T2V input of every encoded image: its study's report + its view sentence (§3), study by study.

        Args:
            batch: Its ``views`` name every real image (the DataModule fills them).
            encoded: ``[B, V]`` bool, the images whose ``E_v`` is generated; default every real view.
        """
        if encoded is None:
            encoded = require_images(batch, "Bidirectional")[1]
        texts = []
        for b, v in encoded.nonzero().tolist():
            if b >= len(batch.views) or v >= len(batch.views[b]):
                raise BatchError(
                    f"Bidirectional needs the view name of every image (batch.views) for T2V; study "
                    f"{batch.ids[b]!r} has none for image {v}: use a DataModule that fills views (annotation "
                    "'views', or its views_path from `radiolm data views`)"
                )
            texts.append(batch.reports[b] + self.view_text.format(view=batch.views[b][v]))
        return texts

    def text_to_vision(self, texts: list[str], target: Tensor) -> Tensor:
        """Generate ``E_g`` from the reports with the frozen LLM, teacher-forced over the visual slots.

        Args:
            texts: ``N`` reports with their view sentence.
            target: ``E_v`` ``[N, N_p, D_L]``; ``E_v,1..N_p-1`` fill the slots (see the module docstring).

        Returns:
            ``E_g`` ``[N, N_p, D_L]``.
        """
        assert self.text_encoder is not None and self.textual_mapper is not None
        features, mask = self.text_encoder(texts)  # Z_t [N, l, D_t], [N, l]
        text = MaskedEmbeddings(self.textual_mapper(features), mask)  # E_t [N, l, D_L]
        slots = target[:, :-1].detach() if self.t2v_teacher_inputs == "detached" else target[:, :-1]
        inputs = self.t2v_prompt.build(self.language_model, slots, padding_side="right", report=text)
        hidden = self.language_model.hidden_states(inputs.inputs_embeds, inputs.attention_mask)  # [N, T, D_L]
        n_p = target.shape[1]
        positions = inputs.slot_starts["image"][:, None] - 1 + torch.arange(n_p, device=hidden.device)
        return hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]))

    def clip_loss(self, visual: Tensor, reports: list[str]) -> Tensor:
        """CLIP baseline (footnote 4): mean ``E_v`` and mean LLM word embedding of the report, each projected.

        Args:
            visual: ``E_v`` ``[B, N_p, D_L]`` (mean over the tokens: the pooling is open).
            reports: ``B`` reports, truncated to the prompt's ``max_report_tokens``.
        """
        assert self.clip_visual is not None and self.clip_text is not None
        words, keep = self.prompt.report_embeddings(self.language_model, reports)  # [B, T, D_L], [B, T]
        weights = keep.to(visual.device, torch.float32)[..., None]
        text = (words.float().to(visual.device) * weights).sum(1) / weights.sum(1)
        return clip_infonce(self.clip_visual(visual.float().mean(1)), self.clip_text(text), self.clip_temperature)
