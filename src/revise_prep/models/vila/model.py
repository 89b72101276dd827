"""The ReViSE AR model (VILA) on stock transformers parts: ``encode(task, prompt, media)`` -> LLM last hidden states.

Llama LLM (``llm/``), SigLIP tower (``vision_tower/``) and our own projector (``mm_projector/``), wired as upstream's
``prepare_inputs_labels_for_multimodal`` + ``LlamaModel`` forward (VILA_SPEC sections 4-6). No labels/loss (F2).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from PIL import Image
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, SiglipVisionModel

from .config import VilaCheckpoint, read_checkpoint, vila_identifier
from .frames import OnError
from .inputs import AR_NUM_FRAMES, Media, PathLike, VilaInputs, open_image
from .preprocess import Resampler
from .projector import MultimodalProjector, tokens_per_image
from .prompt import IM_END, IM_PATCH, IM_START, IMAGE_TOKEN_INDEX, build_prompt, resolve_task
from .prompt import tokenizer_image_token

logger = logging.getLogger(__name__)

__all__ = ["AR_NUM_FRAMES", "Media", "VilaARModel"]


class VilaARModel:
    """A loaded VILA checkpoint; batch size 1, eval mode, outputs on CPU in the model dtype."""

    def __init__(
        self,
        checkpoint: VilaCheckpoint,
        tokenizer: object,
        llm: PreTrainedModel,
        vision_tower: SiglipVisionModel,
        projector: MultimodalProjector,
        *,
        dtype: torch.dtype,
        device: torch.device,
        source: str,
        on_video_error: OnError = "black",
        decode_all_frames: bool = True,
        resampler: Resampler = "pillow10",
    ) -> None:
        self.checkpoint = checkpoint
        self.tokenizer = tokenizer
        self.llm = llm
        self.vision_tower = vision_tower
        self.projector = projector
        self.dtype = dtype
        self.device = device
        self.source = source
        self.on_video_error: OnError = on_video_error
        self.decode_all_frames = decode_all_frames
        self.resampler: Resampler = resampler
        pad = tokenizer.pad_token_id
        self.pad_id: int = int(pad if pad is not None else tokenizer.eos_token_id)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        path: PathLike,
        *,
        dtype: torch.dtype = torch.float16,
        device: str | torch.device = "cpu",
        on_video_error: OnError = "black",
        decode_all_frames: bool = True,
        resampler: Resampler = "pillow10",
    ) -> "VilaARModel":
        """Load a VILA checkpoint folder (or hub ``org/name``) as upstream does: all parts in ``dtype``, sdpa.

        The library defaults reproduce the original ``general_emb`` bit for bit: black frames for unreadable
        videos (``on_video_error="black"``), all 8 sampled frames encoded as one batch, Pillow 10.4 resize.
        ``on_video_error="fail"`` raises ``VideoError`` with a reason instead; that is the default of the
        ``revise-prep ar`` step (``ArSettings.on_video_error``), which passes it explicitly.
        ``decode_all_frames=False`` decodes/encodes only the frames that reach the LLM (F4, see ``VilaInputs``).

        Only the base language model is kept: the LM head (``lm_head``, vocab x hidden: ~1 GB in fp16 on the 8B
        model) never reaches ``device``; the features are hidden states, so the output is unchanged.
        """
        ckpt = read_checkpoint(path)
        dev = torch.device(device)
        tokenizer = AutoTokenizer.from_pretrained(str(ckpt.llm_dir), padding_side="right")
        llm = AutoModelForCausalLM.from_pretrained(str(ckpt.llm_dir), dtype=dtype, attn_implementation="sdpa")
        llm.lm_head = None  # unused (hidden states only); dropped before the move to ``device``
        tower = SiglipVisionModel.from_pretrained(str(ckpt.vision_tower_dir), dtype=dtype, attn_implementation="sdpa")
        projector = MultimodalProjector.from_pretrained(
            ckpt.mm_projector_dir,
            projector_type=ckpt.projector_type,
            mm_hidden_size=int(tower.config.hidden_size),
            hidden_size=int(llm.config.hidden_size),
            dtype=dtype,
            device=dev,
        )
        _add_multimodal_tokens(ckpt, tokenizer, llm)
        llm.to(dev).eval()
        tower.to(dev).eval()
        logger.info("loaded VILA AR model from %s (%s, projector %s)", ckpt.root, dtype, ckpt.projector_type)
        return cls(
            ckpt, tokenizer, llm, tower, projector, dtype=dtype, device=dev, source=str(path),
            on_video_error=on_video_error, decode_all_frames=decode_all_frames, resampler=resampler,
        )

    # ------------------------------------------------------------------ properties
    @property
    def identifier(self) -> str:
        """Stable description of what produced the features (checkpoint source, projector, dtype)."""
        return vila_identifier(self.source, self.checkpoint.projector_type, str(self.dtype).removeprefix("torch."))

    @property
    def hidden_size(self) -> int:
        return int(self.llm.config.hidden_size)

    @property
    def image_tokens_per_image(self) -> int:
        """LLM tokens per image (196 for so400m + mlp_downsample, 16 for the tiny test checkpoint)."""
        cfg = self.vision_tower.config
        grid = (int(cfg.image_size) // int(cfg.patch_size)) ** 2
        if self.checkpoint.select_feature == "patch":
            grid -= 1
        return tokens_per_image(self.checkpoint.projector_type, grid)

    # ------------------------------------------------------------------ pieces
    def build_prompt(self, task: str, prompt: str, num_images: int | None = None) -> str:
        """Templated llama_3 prompt; ``num_images`` defaults to 1 for media tasks, 0 otherwise (as upstream)."""
        spec = resolve_task(task)
        if num_images is None:
            num_images = 1 if spec.media else 0
        return build_prompt(spec.name, prompt, num_images, mm_use_im_start_end=self.checkpoint.mm_use_im_start_end)

    def input_ids(self, task: str, prompt: str, num_images: int | None = None) -> list[int]:
        """Token ids of the templated prompt, ``-200`` per ``<image>`` (upstream ``tokenizer_image_token``)."""
        return tokenizer_image_token(self.build_prompt(task, prompt, num_images), self.tokenizer)

    def media_inputs(self) -> VilaInputs:
        """This model's media -> pixels preparation (picklable; what step-2 workers run without the model)."""
        return VilaInputs.from_checkpoint(self.checkpoint, dtype=self.dtype, resampler=self.resampler,
                                          on_video_error=self.on_video_error,
                                          decode_all_frames=self.decode_all_frames)

    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``[F, 3, S, S]`` pixels in the model dtype (CPU), preprocessed as upstream ``process_images``."""
        return self.media_inputs().pixel_values(images)

    @torch.inference_mode()
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected image tokens ``[F, T, hidden]``: tower ``hidden_states[select_layer]`` -> projector."""
        pixels = pixel_values.to(self.device, self.dtype).contiguous()  # layout changes the conv kernel's rounding
        out = self.vision_tower(pixels, output_hidden_states=True)
        feats = out.hidden_states[self.checkpoint.select_layer].to(self.dtype)
        if self.checkpoint.select_feature == "patch":
            feats = feats[:, 1:]
        return self.projector(feats)

    @torch.inference_mode()
    def splice(self, input_ids: Sequence[int], image_features: torch.Tensor) -> torch.Tensor:
        """Media-path ``inputs_embeds [1, L, H]``: pad ids deleted, k-th ``-200`` -> ``image_features[k]``, truncated."""
        ids = torch.tensor(list(input_ids), dtype=torch.long, device=self.device)
        ids = ids[ids != self.pad_id]
        embeds = self.llm.get_input_embeddings()(torch.where(ids == IMAGE_TOKEN_INDEX, 0, ids))
        positions = (ids == IMAGE_TOKEN_INDEX).nonzero().flatten().tolist()
        if len(positions) > image_features.shape[0]:
            raise ValueError(f"prompt has {len(positions)} image placeholders but only "
                             f"{image_features.shape[0]} images were encoded")
        pieces, start = [], 0
        for k, pos in enumerate(positions):
            pieces += [embeds[start:pos], image_features[k].to(embeds.device, embeds.dtype)]
            start = pos + 1
        pieces.append(embeds[start:])
        spliced = torch.cat(pieces)
        max_len = self.checkpoint.tokenizer_model_max_length
        if max_len is not None and spliced.shape[0] > max_len:
            logger.debug("spliced sequence of %d tokens truncated to %d", spliced.shape[0], max_len)
            spliced = spliced[:max_len]
        return spliced.unsqueeze(0)

    # ------------------------------------------------------------------ encode
    @torch.inference_mode()
    def encode(self, task: str, prompt: str, media: Media = None) -> torch.Tensor:
        """``vlm_last_hidden_states`` ``[1, L, hidden]`` (model dtype, CPU) for one task/prompt/media.

        ``media``: vid_edit -> video path or list of frames; i2v_gen/img_edit -> image path or PIL image;
        vid_gen/img_gen -> none (ignored with a warning, as upstream). Same as
        ``encode_pixels(task, prompt, media_inputs().prepare(task, prompt, media))``.
        """
        spec = resolve_task(task)
        if spec.media is None and media is not None:
            logger.warning("task %s takes no media; ignoring %r", spec.name, media)
            media = None
        return self.encode_pixels(spec.name, prompt, self.media_inputs().prepare(spec.name, prompt, media))

    @torch.inference_mode()
    def encode_pixels(self, task: str, prompt: str, pixel_values: torch.Tensor | None) -> torch.Tensor:
        """``vlm_last_hidden_states`` ``[1, L, hidden]`` (model dtype, CPU) from pixels prepared elsewhere.

        ``pixel_values``: ``[F, 3, S, S]`` as :meth:`VilaInputs.prepare` / :meth:`pixel_values` make them (the
        k-th ``<image>`` slot takes image k; extra images are encoded and discarded, as upstream), or ``None``
        for the text-only tasks (vid_gen, img_gen).
        """
        spec = resolve_task(task)
        ids = self.input_ids(spec.name, prompt)
        num_placeholders = ids.count(IMAGE_TOKEN_INDEX)
        if spec.media is None:
            if pixel_values is not None:
                raise ValueError(f"text-only task {spec.name} takes no pixel values")
            if num_placeholders:
                raise ValueError(f"text-only task {spec.name}: the prompt contains a literal <image>, "
                                 "which upstream cannot encode either")
            return self._encode_text(ids)
        if pixel_values is None:
            raise ValueError(f"task {spec.name} needs {spec.media} media (pixel values)")
        size = self.checkpoint.image_size
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (3, size, size):
            raise ValueError(f"pixel values must be [F, 3, {size}, {size}] for this checkpoint, "
                             f"got {list(pixel_values.shape)}")
        if num_placeholders > pixel_values.shape[0]:
            raise ValueError(f"prompt has {num_placeholders} image placeholders but {pixel_values.shape[0]} "
                             "images are available (a literal <image> in the prompt pulls in one more frame)")
        features = self.image_features(pixel_values)
        embeds = self.splice(ids, features)
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=self.device)
        out = self.llm.model(inputs_embeds=embeds, attention_mask=mask, use_cache=False)
        return out.last_hidden_state.to("cpu")

    def _encode_text(self, ids: list[int]) -> torch.Tensor:
        """Text-only path: ids + mask ``ids != pad`` (pads stay as masked keys), never truncated."""
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        mask = (input_ids != self.pad_id).long()
        out = self.llm.model(input_ids=input_ids, attention_mask=mask, use_cache=False)
        return out.last_hidden_state.to("cpu")


_open_image = open_image  # backwards-compatible name


def _add_multimodal_tokens(ckpt: VilaCheckpoint, tokenizer: object, llm: PreTrainedModel) -> None:
    """Upstream adds ``<im_patch>`` (and ``<im_start>``/``<im_end>``) as special tokens and grows the embeddings.

    Existing ids and rows are untouched; new rows only matter when those tokens appear in a prompt.
    """
    new: list[str] = []
    if ckpt.mm_use_im_patch_token:
        new.append(IM_PATCH)
    if ckpt.mm_use_im_start_end:
        new += [IM_START, IM_END]
    if not new:
        return
    added = tokenizer.add_tokens(new, special_tokens=True)
    rows = llm.get_input_embeddings().weight.shape[0]
    if added and len(tokenizer) > rows:
        if ckpt.mm_use_im_start_end:
            logger.warning("VILA checkpoint %s: %s were not in the vocabulary; their embeddings are new, "
                           "untrained rows", ckpt.root, new)
        llm.resize_token_embeddings(len(tokenizer))
