"""WER of each system of a GPU run, from the gpu_texts.json that bench/gpu.py wrote.

    python bench/gpu_wer.py /work/.device/N/gpu_texts.json
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import load_corpus, wer  # noqa: E402


def main(path: str) -> None:
    references = {r["id"]: r["reference_text"] for r in load_corpus()}
    with open(path, encoding="utf-8") as f:
        systems = json.load(f)
    for label, texts in systems.items():
        refs = {i: references[i.split("#")[0]] for i in texts}  # id#copy: a repeated clip
        print(f"| {label} | {wer(refs, texts):.2f} |")


if __name__ == "__main__":
    main(sys.argv[1])
