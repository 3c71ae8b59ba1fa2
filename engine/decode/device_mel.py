"""Whisper log-mel on the model's device (torch), for the torch encoder (issue 13 item 2).

With `--encoder torch` on CUDA the decode workers ship each chunk's 16 kHz samples (a `DeviceMel`)
instead of its features; this module turns a batch of them into the encoder's input in one
batched STFT on the device. The result equals `engine.prepare.features.FeatureComputer` (up to
float rounding): faster-whisper's own filters, window, n_fft and hop; its 160 samples of zeros
after the audio; the per-chunk max over the chunk's own frames (including the last one, which
both drop afterwards); and zeros after the chunk's frames up to 3000.

Import this module only where torch is wanted: torch is not a dependency of the CPU path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from engine.types import WINDOW_FRAMES, DeviceMel

PAD_SAMPLES = 160  # zeros FeatureExtractor.__call__ adds after the audio (its `padding`)


class MelOnDevice:
    """Batched log-mel spectrograms on one torch device, with the model's mel bins."""

    def __init__(self, n_mels: int, device: str | torch.device = "cpu") -> None:
        from faster_whisper.feature_extractor import FeatureExtractor

        extractor = FeatureExtractor(feature_size=n_mels)
        self.n_mels = n_mels
        self.device = torch.device(device)
        self.n_fft, self.hop = int(extractor.n_fft), int(extractor.hop_length)
        self._filters = torch.from_numpy(extractor.mel_filters).to(self.device)
        # the window FeatureExtractor.__call__ builds
        window = np.hanning(self.n_fft + 1)[:-1].astype("float32")
        self._window = torch.from_numpy(window).to(self.device)

    @torch.inference_mode()
    def log_mel(self, pieces: Sequence[np.ndarray]) -> torch.Tensor:
        """Each 16 kHz float32 piece's features, as FeatureComputer gives them:
        [pieces, n_mels, 3000] float32 on the device."""
        lengths = [int(p.shape[0]) for p in pieces]
        # at least the centre padding (n_fft // 2) plus one sample, which reflect padding needs
        total = max(max(lengths) + PAD_SAMPLES, self.n_fft // 2 + 1)
        audio = torch.zeros(len(pieces), total, device=self.device)
        for row, piece in zip(audio, pieces, strict=True):
            row[: piece.shape[0]].copy_(torch.from_numpy(piece), non_blocking=True)
        spectrum = torch.stft(audio, self.n_fft, self.hop, window=self._window, center=True,
                              pad_mode="reflect", return_complex=True)
        power = spectrum.real.square() + spectrum.imag.square()  # [pieces, bins, frames]
        log_spec = torch.clamp(self._filters @ power, min=1e-10).log10()
        # a piece's own frames: those FeatureExtractor keeps (n // hop + 1); the batch's zeros
        # after them only reach later frames, as its own 160 zeros and their reflection do
        frames = torch.tensor([n // self.hop for n in lengths], device=self.device)
        index = torch.arange(log_spec.shape[-1], device=self.device)
        own = index[None, :] <= frames[:, None]  # [pieces, frames]
        peak = log_spec.masked_fill(~own[:, None, :], -torch.inf).amax(dim=(1, 2))
        log_spec = (torch.maximum(log_spec, (peak - 8.0)[:, None, None]) + 4.0) / 4.0
        kept = index[None, :] < frames[:, None]  # the engine's [..., :-1], then zero padding
        log_spec = log_spec * kept[:, None, :]
        out = torch.zeros(len(pieces), self.n_mels, WINDOW_FRAMES, device=self.device)
        width = min(WINDOW_FRAMES, log_spec.shape[-1])
        out[..., :width] = log_spec[..., :width]
        return out

    @torch.inference_mode()
    def __call__(self, windows: Sequence[np.ndarray | DeviceMel]) -> torch.Tensor:
        """The encoder's input for a batch of windows: features computed by the workers are
        moved to the device, the others computed there ([batch, n_mels, 3000] float32)."""
        pending = [w for w in windows if isinstance(w, DeviceMel)]
        pieces = [piece.samples for w in pending for piece in w.pieces]
        mels = iter(self.log_mel(pieces)) if pieces else iter(())
        out = torch.zeros(len(windows), self.n_mels, WINDOW_FRAMES, device=self.device)
        for row, window in zip(out, windows, strict=True):
            if isinstance(window, np.ndarray):
                row.copy_(torch.from_numpy(window), non_blocking=True)
                continue
            for piece in window.pieces:  # laid side by side (packing), then shifted (tails)
                row[:, piece.position: piece.position + piece.frames] = \
                    next(mels)[:, : piece.frames]
            if window.shift_frames:
                shift = min(window.shift_frames, WINDOW_FRAMES)
                row[:, : WINDOW_FRAMES - shift] = row[:, shift:].clone()
                row[:, WINDOW_FRAMES - shift:] = 0.0
        return out
