"""WER of each system of a GPU run, from the gpu_texts.json that bench/gpu.py wrote.

    python bench/gpu_wer.py OUT/gpu_texts.json [--corpus DIR]
"""

from __future__ import annotations

import click
from common import CORPUS, base_id, load_corpus, load_texts, references, wer


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--corpus", default=CORPUS, show_default=True, help="The corpus of the run.")
def main(path: str, corpus: str) -> None:
    clips = references(load_corpus(corpus))
    for label, texts in load_texts(path).items():
        refs = {i: clips[base_id(i)] for i in texts}  # id#copy: a repeated clip
        click.echo(f"| {label} | {wer(refs, texts):.2f} |")


if __name__ == "__main__":
    main()
