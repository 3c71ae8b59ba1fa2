"""What a run's model will be, decided before its weights load: folder, device, compute type,
replicas, encoder (CTranslate2's or the torch one) and mel bins.

The decode workers need only the mel bins and where the log-mel is computed, so with a plan they
start, and decode the first files, while `ModelRunner` loads what the plan says (1-5 s on a GPU
host: CTranslate2's load, torch's import and the encoder's weights).
"""

from __future__ import annotations

import os

from engine.config import ModelConfig
from engine.decode.ct2_weights import encoder_shape
from engine.decode.model import ModelPlan, cuda_device_count, torch_installed
from engine.decode.models import resolve_model
from engine.errors import ModelLoadError

__all__ = ["AUTO_TORCH_WIDTH", "ModelPlan", "plan_model", "wants_torch_encoder"]

AUTO_TORCH_WIDTH = 1024  # --encoder auto picks torch on CUDA for encoders this wide or wider


def plan_model(model: ModelConfig) -> ModelPlan:
    """Resolve the model folder and every choice that loading it depends on.

    Raises:
        ModelLoadError: no such model, an unreadable model.bin, no CUDA device where one was
            asked for, or a torch encoder that cannot run as asked.
    """
    path = resolve_model(model.path)
    device = _effective_device(model.device)
    compute_type = model.compute_type
    if compute_type == "auto":
        compute_type = "int8" if device == "cpu" else "float16"
    cores = os.cpu_count() or 2
    replicas = model.replicas or (min(2, cores) if device == "cpu" else 8)
    width, n_mels = encoder_shape(path)
    torch_encoder = wants_torch_encoder(model, width, device)
    return ModelPlan(path, device, compute_type, replicas,
                     threads=model.cpu_threads or max(1, cores // replicas), width=width,
                     n_mels=n_mels, torch_encoder=torch_encoder,
                     features_on_device=_features_on_device(model, torch_encoder, device))


def wants_torch_encoder(model: ModelConfig, width: int, device: str) -> bool:
    """Whether the torch encoder runs instead of CTranslate2's.

    auto: on one CUDA device, when PyTorch with CUDA is installed, for encoders at least
    AUTO_TORCH_WIDTH wide (medium, large-v3, turbo, distil-large): on an H200 it gave 2.2-2.5x end
    to end on large-v3-shaped models, while base (512 wide) is decoder-bound and ran slower
    (bench/RESULTS.md).

    Raises:
        ModelLoadError: `--encoder torch` over several GPUs, or without PyTorch.
    """
    if model.encoder == "ctranslate2":
        return False
    if model.encoder == "auto":
        return (device == "cuda" and len(model.device_index) == 1 and width >= AUTO_TORCH_WIDTH
                and torch_installed(cuda=True))
    if device == "cuda" and len(model.device_index) > 1:
        raise ModelLoadError("--encoder torch runs on one GPU per process; give one --gpu, or "
                             "use --encoder ctranslate2")
    if not torch_installed():
        raise ModelLoadError("--encoder torch needs PyTorch: pip install 'batchscribe[gpu]', "
                             "or use --encoder ctranslate2")
    return True


def _features_on_device(model: ModelConfig, torch_encoder: bool, device: str) -> bool:
    """With `features_on_device`, for the torch encoder on CUDA only (issue 13)."""
    return model.features_on_device and torch_encoder and device == "cuda"


def _effective_device(requested: str) -> str:
    if requested == "cpu":
        return requested
    gpus = cuda_device_count()
    if requested == "cuda" and gpus == 0:
        raise ModelLoadError("device cuda was asked for, but no CUDA device found (no GPU, or "
                             "no working NVIDIA driver); run on the CPU (device cpu or auto)")
    return "cuda" if gpus > 0 else "cpu"

