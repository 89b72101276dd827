"""VILA AR model of ReViSE (``vlm_last_hidden_states``) on stock transformers parts."""

from .config import VilaCheckpoint, read_checkpoint, resolve_checkpoint_path, vila_identifier, vila_identity
from .frames import black_frames, count_frames, load_ar_frames
from .inputs import VilaInputs, open_image
from .model import AR_NUM_FRAMES, VilaARModel
from .preprocess import ar_frame_indices, expand2square, preprocess_images, resize_square
from .projector import DownSample, MultimodalProjector, tokens_per_image
from .prompt import IMAGE_TOKEN_INDEX, TASKS, TaskSpec, build_prompt, resolve_task, tokenizer_image_token
from .resample import resize_bicubic_pillow10

__all__ = [
    "AR_NUM_FRAMES",
    "IMAGE_TOKEN_INDEX",
    "TASKS",
    "DownSample",
    "MultimodalProjector",
    "TaskSpec",
    "VilaARModel",
    "VilaCheckpoint",
    "VilaInputs",
    "ar_frame_indices",
    "black_frames",
    "build_prompt",
    "count_frames",
    "expand2square",
    "load_ar_frames",
    "open_image",
    "preprocess_images",
    "read_checkpoint",
    "resize_bicubic_pillow10",
    "resize_square",
    "resolve_checkpoint_path",
    "resolve_task",
    "tokenizer_image_token",
    "tokens_per_image",
    "vila_identifier",
    "vila_identity",
]
