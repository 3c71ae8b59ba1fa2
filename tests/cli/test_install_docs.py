"""The install lines of the README, the CI script and pyproject.toml do what they say (issue 28
item 8: a plain `pip install torch` pulled 3.2 GB of CUDA packages; pandas and DuckDB, used by
the README's reading examples, are not installed by `pip install .`)."""

from __future__ import annotations

import os
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"


def read(name: str) -> str:
    with open(os.path.join(REPO, name), encoding="utf-8") as f:
        return f.read()


def test_every_torch_install_line_gives_the_cpu_build() -> None:
    for name in ("README.md", ".ci/run", "pyproject.toml"):
        text = read(name)
        found = list(re.finditer(r"pip install (?:-q )?torch\b[^\n]*", text))
        assert found, name
        for match in found:
            warned = text[:match.start()].endswith("a plain `")  # the README's warning
            assert CPU_INDEX in match.group(0) or warned, (name, match.group(0))


def test_the_reading_examples_name_the_extra_that_installs_their_packages() -> None:
    extras = tomllib.loads(read("pyproject.toml"))["project"]["optional-dependencies"]
    read_extra = " ".join(extras["read"])
    readme = read("README.md")
    examples = readme[readme.index("## Reading the output"):readme.index("## The manifest")]
    assert "pip install '.[read]'" in examples
    for call, package in (("pd.read_parquet", "pandas"), ("duckdb.sql", "duckdb"),
                          ("pl.read_parquet", "polars")):
        line = next(x for x in examples.splitlines() if x.startswith(call))
        assert "(read extra" in line and package in read_extra, line


def test_the_readme_demo_output_is_ignored_by_git() -> None:
    # issue 28: `transcripts/`, the README's demo output, showed up in `git status`
    assert "transcripts/" in read("README.md")
    assert "transcripts/" in read(".gitignore").splitlines()
