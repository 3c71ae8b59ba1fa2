"""The model's vocabulary: text to tokens and back, and prompts turned into tokens (the one place).

Read from the model folder's `tokenizer.json` alone, so that conditioning and tests can tokenize
without loading the model; the model adapter (`engine.decode.model`) holds one for its run.
"""

from __future__ import annotations

import os
from typing import Any

from engine.errors import ModelLoadError
from engine.types import Prompt


class Vocabulary:
    """faster-whisper's tokenizers of one model, per language and task (cached)."""

    def __init__(self, hf_tokenizer: Any, multilingual: bool) -> None:
        self.hf_tokenizer = hf_tokenizer
        self.multilingual = multilingual
        self._tokenizers: dict[tuple[str, str], Any] = {}

    @classmethod
    def from_folder(cls, path: str, multilingual: bool) -> Vocabulary:
        """The vocabulary of the model in `path` (its `tokenizer.json`)."""
        import tokenizers

        try:
            return cls(tokenizers.Tokenizer.from_file(os.path.join(path, "tokenizer.json")),
                       multilingual)
        except Exception as e:
            raise ModelLoadError(
                f"cannot read the tokenizer of the Whisper model in {path}: "
                f"{str(e).splitlines()[0]}") from e

    def tokenizer(self, language: str = "en", task: str = "transcribe") -> Any:
        """faster-whisper's Tokenizer for one language and task (an English-only model's is
        English's)."""
        from faster_whisper.tokenizer import Tokenizer

        if not self.multilingual:
            language = "en"
        key = (language, task)
        if key not in self._tokenizers:
            self._tokenizers[key] = Tokenizer(
                self.hf_tokenizer, self.multilingual, task=task, language=language)
        return self._tokenizers[key]

    @property
    def eot(self) -> int:
        return int(self.tokenizer().eot)

    @property
    def timestamp_begin(self) -> int:
        return int(self.tokenizer().timestamp_begin)

    def encode(self, text: str) -> tuple[int, ...]:
        """Text as prompt tokens (with a leading space, as the model writes text)."""
        return tuple(self.tokenizer().encode(" " + text.strip()))

    def decode(self, tokens: list[int] | tuple[int, ...]) -> str:
        return str(self.tokenizer().decode(list(tokens)))

    def initial_prompt(self, language: str, task: str, text: str | None,
                       timestamps: bool) -> Prompt:
        """The prompt of a window with an initial prompt (`text`), or with none."""
        return Prompt.initial(language, task, self.encode(text) if text else (), timestamps)

    def tokens(self, prompt: Prompt) -> list[int]:
        """The decoder's prompt tokens: previous text, start of transcript (language, task),
        then no-timestamps unless it decodes with timestamp tokens."""
        tokenizer = self.tokenizer(prompt.language, prompt.task)
        out = [tokenizer.sot_prev, *prompt.previous] if prompt.previous else []
        out += tokenizer.sot_sequence
        if not prompt.timestamps:
            out.append(tokenizer.no_timestamps)
        return out

    def suppressed(self) -> list[int]:
        """faster-whisper's suppressed tokens (its default, -1)."""
        from faster_whisper.transcribe import get_suppressed_tokens

        return list(get_suppressed_tokens(self.tokenizer(), [-1]))
