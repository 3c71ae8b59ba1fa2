"""Job files and `transcribe` options: one vocabulary, checked before anything runs."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.errors import ConfigError
from engine.options import OPTIONS, from_job, load_job


def test_every_option_is_a_transcribe_flag_and_a_job_key() -> None:
    help_text = CliRunner().invoke(cli, ["transcribe", "-h"], terminal_width=200).output
    for option in OPTIONS:
        assert option.flags[-1].split("/")[0] in help_text


def test_a_job_file_builds_the_config_the_flags_build(tmp_path) -> None:
    path = tmp_path / "job.toml"
    path.write_text('manifest = "m.parquet"\noutput = "out"\nbackend = "ray"\n'
                    '[model]\ncompute_type = "int8"\n[decode]\nbeam_size = 1\n'
                    '[run]\nshard = "1/4"\npassthrough = ["reference"]\n'
                    '[ray]\nmodel_actors = 2\ngpus_per_model_actor = 1\n')
    config = load_job(str(path))
    assert config.backend == "ray" and config.model.compute_type == "int8"
    assert config.decode.beam_size == 1 and config.run.shard == (1, 4)
    assert config.run.passthrough == ("reference",) and config.ray.model_actors == 2
    assert config.decode.temperatures == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # defaults kept


def test_vad_settings_from_a_job_file_and_from_flags(tmp_path) -> None:
    path = tmp_path / "job.toml"
    path.write_text('manifest = "m.parquet"\noutput = "out"\n[vad]\nthreshold = 0.35\n'
                    'min_silence_duration_ms = 1000\nspeech_pad_ms = 200\nrescue = false\n'
                    'rescue_db = 9.0\n')
    vad = load_job(str(path)).vad
    assert (vad.threshold, vad.min_silence_duration_ms, vad.speech_pad_ms) == (0.35, 1000, 200)
    assert (vad.rescue, vad.rescue_db) == (False, 9.0)


@pytest.mark.parametrize("job, message", [
    ({"manifest": "m", "output": "o", "modle": {}},
     "job.toml: unknown key 'modle'; valid keys here: manifest, output, backend, model"),
    ({"manifest": "m", "output": "o", "model": {"compute": "int8"}},
     "job.toml: [model] unknown key 'compute'; valid keys here: path, device, compute_type"),
    ({"manifest": "m", "output": "o", "model": {"compute_type": "int4"}},
     "job.toml: [model] compute_type: 'int4' is not one of 'auto', 'default', 'int8'"),
    ({"manifest": "m", "output": "o", "backend": "spark"},
     "job.toml: backend: 'spark' is not one of 'local', 'ray'"),
    ({"manifest": "m", "output": "o", "decode": {"beam_size": 0}},
     "job.toml: [decode] beam_size: 0 is not in the range x>=1"),
    ({"manifest": "m", "output": "o", "run": {"shard": "4/4"}},
     "job.toml: [run] shard: '4/4': need 0 <= I < N"),
    ({"manifest": "m", "output": "o", "vad": {"enabled": "yes"}},
     "job.toml: [vad] enabled: expected true or false, got 'yes'"),
    ({"manifest": "m", "output": "o", "run": {"passthrough": "reference"}},
     "job.toml: [run] passthrough: expected a list, got 'reference'"),
    ({"output": "o"}, "job.toml: missing manifest (top-level keys)"),
])
def test_bad_job_files_name_the_key_and_the_allowed_values(job, message) -> None:
    with pytest.raises(ConfigError) as caught:
        from_job(job, "job.toml")
    assert str(caught.value).startswith(message)


def test_run_command_exits_1_with_one_line_on_a_bad_job(tmp_path) -> None:
    path = tmp_path / "job.toml"
    path.write_text('manifest = "m.parquet"\noutput = "out"\n[decode]\nbeam = 2\n')
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 1
    assert result.output.strip().startswith(f"Error: {path}: [decode] unknown key 'beam'")
    path.write_text("manifest = \n")
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 1 and "is not valid TOML" in result.output


def test_shipped_job_files_are_valid() -> None:
    import glob
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    files = glob.glob(os.path.join(root, "jobs", "*.toml"))
    assert len(files) >= 3
    for path in files:
        load_job(path)


@pytest.mark.parametrize("cpus, model, decode", [(2, 0.5, 0.5), (16, 1.0, 1.0), (3, 1.0, 1.0),
                                                 (1, 0.0, 0.0)])
def test_ray_actor_cpus_default_to_a_share_of_the_cluster(cpus, model, decode) -> None:
    from engine.config import RayConfig

    sized = RayConfig().sized_for(cpus)
    assert (sized.cpus_per_model_actor, sized.cpus_per_decode_actor) == (model, decode)


def test_ray_actor_cpus_given_are_kept_and_the_rest_shared() -> None:
    from engine.config import RayConfig

    sized = RayConfig(cpus_per_model_actor=2.0, decode_actors=2).sized_for(4)
    assert (sized.cpus_per_model_actor, sized.cpus_per_decode_actor) == (2.0, 0.5)
