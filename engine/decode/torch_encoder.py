"""The Whisper encoder in PyTorch, weights from a CTranslate2 model folder, for CUDA.

CTranslate2's own encoder materialises each 1500x1500 attention matrix and runs far below a GPU's
matrix throughput; this one uses scaled-dot-product (flash) attention. Its output stays on the
device and is handed to CTranslate2's `generate`/`align`/`detect_language` through
`StorageView.from_array` (no copy, no host round trip). The weights are read from model.bin
itself (`engine.decode.ct2_weights`), so any CTranslate2 Whisper folder works, int8 ones
dequantized.

Import this module only where torch is wanted: torch is not a dependency of the CPU path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.decode.ct2_weights import read_variables
from engine.decode.device_mel import MelOnDevice
from engine.errors import ModelLoadError
from engine.types import DeviceMel

LAYER_NORM_EPS = 1e-5


class _Layer(nn.Module):
    """One pre-norm encoder layer: self-attention (fused q/k/v projection), then the MLP."""

    def __init__(self, width: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, width = x.shape
        qkv = self.qkv(self.attn_norm(x)).view(batch, frames, 3, self.heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [batch, heads, frames, head_dim]
        attended = F.scaled_dot_product_attention(q, k, v)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, frames, width))
        out: torch.Tensor = x + self.fc2(F.gelu(self.fc1(self.mlp_norm(x))))
        return out


class WhisperEncoder(nn.Module):
    """Two GELU convolutions, sinusoidal positions, pre-norm layers, a final layer norm:
    log-mel [batch, n_mels, 3000] -> [batch, 1500, width]."""

    def __init__(self, n_mels: int, width: int, heads: int, layers: int, hidden: int,
                 frames: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, width, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(width, width, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(frames, width))
        self.layers = nn.ModuleList(_Layer(width, heads, hidden) for _ in range(layers))
        self.norm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv1(features))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        positions = self.get_buffer("positions")
        x = x + positions[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        out: torch.Tensor = self.norm(x)
        return out


def _state_dict(variables: dict[str, np.ndarray], layers: int) -> dict[str, torch.Tensor]:
    """Our module's parameter names -> CTranslate2's variables."""
    names = {"conv1.weight": "conv1/weight", "conv1.bias": "conv1/bias",
             "conv2.weight": "conv2/weight", "conv2.bias": "conv2/bias",
             "positions": "position_encodings/encodings",
             "norm.weight": "layer_norm/gamma", "norm.bias": "layer_norm/beta"}
    per_layer = {"attn_norm.weight": "self_attention/layer_norm/gamma",
                 "attn_norm.bias": "self_attention/layer_norm/beta",
                 "qkv.weight": "self_attention/linear_0/weight",
                 "qkv.bias": "self_attention/linear_0/bias",
                 "out.weight": "self_attention/linear_1/weight",
                 "out.bias": "self_attention/linear_1/bias",
                 "mlp_norm.weight": "ffn/layer_norm/gamma", "mlp_norm.bias": "ffn/layer_norm/beta",
                 "fc1.weight": "ffn/linear_0/weight", "fc1.bias": "ffn/linear_0/bias",
                 "fc2.weight": "ffn/linear_1/weight", "fc2.bias": "ffn/linear_1/bias"}
    for i in range(layers):
        names.update({f"layers.{i}.{ours}": f"layer_{i}/{theirs}"
                      for ours, theirs in per_layer.items()})
    return {ours: torch.from_numpy(np.array(variables["encoder/" + theirs]))
            for ours, theirs in names.items()}


def load_encoder(folder: str, device: str = "cpu",
                 dtype: torch.dtype = torch.float32) -> WhisperEncoder:
    """The encoder of a CTranslate2 Whisper folder on `device` in `dtype` (built without
    initialising weights: each tensor goes from the file straight to the device).

    Raises:
        ModelLoadError: model.bin is unreadable or holds no Whisper encoder.
    """
    variables = read_variables(folder, prefix="encoder/")
    layers = sum(1 for name in variables if name.endswith("/self_attention/linear_0/weight"))
    try:
        conv1 = variables["encoder/conv1/weight"]
        width, n_mels = conv1.shape[0], conv1.shape[1]
        heads = int(variables["encoder/num_heads"])
        hidden = variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]
        frames = variables["encoder/position_encodings/encodings"].shape[0]
        with torch.device("meta"):
            encoder = WhisperEncoder(n_mels, width, heads, layers, hidden, frames)
        state = {k: v.to(device, dtype) for k, v in _state_dict(variables, layers).items()}
        encoder.load_state_dict(state, assign=True)
    except (KeyError, RuntimeError) as e:
        raise ModelLoadError(f"{folder}/model.bin holds no Whisper encoder that this reader "
                             f"knows ({e}); use --encoder ctranslate2") from e
    return encoder.eval()


class TorchEncoder:
    """A loaded encoder on one device, callable from several replica threads at once (each
    thread has its own CUDA stream, synchronised before its output goes to CTranslate2)."""

    def __init__(self, folder: str, device: str = "cuda", dtype: str = "float16") -> None:
        self.device = torch.device(device)
        self.dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16,
                      "float32": torch.float32}[dtype]
        self.module = load_encoder(folder, str(self.device), self.dtype)
        self.mel = MelOnDevice(self.module.conv1.in_channels, self.device)
        self._local = threading.local()

    def _stream(self) -> Any:
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
            self._local.stream = stream
        return stream

    def __call__(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        """[batch, n_mels, 3000] log-mel (host or device) -> [batch, 1500, width] on the device,
        ready for CTranslate2 (the work is finished when this returns)."""
        return self._on_stream(lambda: self._run(features))

    def encode_windows(self, windows: Sequence[np.ndarray | DeviceMel]) -> torch.Tensor:
        """As `__call__`, for a batch of windows whose features are on the host or still to be
        computed here from their samples (`DeviceMel`, on the same stream as the encoder)."""
        features = [w for w in windows if isinstance(w, np.ndarray)]
        if len(features) == len(windows):  # all computed by the workers
            return self(np.stack(features))
        return self._on_stream(lambda: self._run(self.mel(windows)))

    @torch.inference_mode()
    def _on_stream(self, work: Callable[[], torch.Tensor]) -> torch.Tensor:
        if self.device.type != "cuda":
            return work()
        stream = self._stream()
        with torch.cuda.stream(stream):
            out = work()
        stream.synchronize()
        return out

    def _run(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(features, np.ndarray):
            features = torch.from_numpy(features)
        x = features.to(self.device, self.dtype, non_blocking=True)
        out: torch.Tensor = self.module(x).contiguous()
        return out


def storage_view(encoded: torch.Tensor | list[torch.Tensor]) -> Any:
    """A CTranslate2 StorageView over encoder outputs (a batch, or rows stacked here) without a
    copy of the batch; the view keeps the tensor alive (`from_array` holds a reference)."""
    import ctranslate2

    batch = torch.stack(encoded) if isinstance(encoded, list) else encoded.contiguous()
    if batch.is_cuda:
        return ctranslate2.StorageView.from_array(batch)
    return ctranslate2.StorageView.from_array(batch.numpy())
