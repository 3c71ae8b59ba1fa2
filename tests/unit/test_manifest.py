import os

import pyarrow as pa
import pytest

from engine.errors import ManifestError
from engine.io.idset import IdSet
from engine.io.manifest import in_shard, open_manifest


def test_relative_paths_resolve_against_the_manifest_folder(write_manifest, tmp_path) -> None:
    path = write_manifest({"path": ["a.wav", "/abs/b.wav"]})
    items = list(open_manifest(path).items())
    assert items[0].path == os.path.join(str(tmp_path), "a.wav")
    assert items[0].item_id == "a.wav"
    assert items[1].path == "/abs/b.wav"


def test_folder_and_glob_manifests(write_manifest, tmp_path) -> None:
    write_manifest({"id": ["a"], "path": ["a.wav"]}, name="one.parquet")
    write_manifest({"id": ["b"], "path": ["b.wav"]}, name="two.parquet")
    for source in (str(tmp_path), os.path.join(str(tmp_path), "*.parquet")):
        manifest = open_manifest(source)
        assert manifest.num_rows == 2
        assert [i.item_id for i in manifest.items()] == ["a", "b"]


def test_overrides_and_passthrough(write_manifest) -> None:
    path = write_manifest({"id": ["x"], "path": ["x.wav"], "language": ["de"],
                           "start_s": [1.5], "end_s": [None], "speaker": ["s1"]})
    (item,) = open_manifest(path).items(passthrough=("speaker",))
    assert (item.language, item.start_s, item.end_s) == ("de", 1.5, None)
    assert item.passthrough == {"speaker": "s1"}


def test_unknown_passthrough_column_is_named(write_manifest) -> None:
    path = write_manifest({"path": ["x.wav"]})
    with pytest.raises(ManifestError, match="passthrough column.*nope"):
        list(open_manifest(path).items(passthrough=("nope",)))


def test_missing_audio_column_fails_before_work(write_manifest) -> None:
    path = write_manifest({"id": ["a"], "file": ["a.wav"]})
    with pytest.raises(ManifestError, match="no 'path' or 'audio' column"):
        open_manifest(path)


def test_duplicate_ids_are_named(write_manifest) -> None:
    path = write_manifest({"id": ["a", "b", "a"], "path": ["1.wav", "2.wav", "3.wav"]})
    with pytest.raises(ManifestError, match="duplicate id 'a'"):
        open_manifest(path).check_ids()


def test_duplicate_derived_ids(write_manifest) -> None:
    path = write_manifest({"path": ["1.wav", "1.wav"]})
    with pytest.raises(ManifestError, match="duplicate id '1.wav'"):
        open_manifest(path).check_ids()


def test_unreadable_parquet(tmp_path) -> None:
    bad = tmp_path / "m.parquet"
    bad.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(ManifestError, match="not readable Parquet"):
        open_manifest(str(bad))


def test_missing_manifest(tmp_path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        open_manifest(str(tmp_path / "nope.parquet"))


def test_hugging_face_audio_struct(write_manifest) -> None:
    audio_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("audio", audio_type)])
    path = write_manifest({"audio": [{"bytes": b"RIFF", "path": "clip.wav"}]}, schema=schema)
    (item,) = open_manifest(path).items()
    assert item.item_id == "clip.wav" and item.audio_bytes == b"RIFF"


def test_skip_done_ids_and_shards_partition_the_rows(write_manifest) -> None:
    ids = [f"row-{i}" for i in range(200)]
    path = write_manifest({"id": ids, "path": [f"{i}.wav" for i in ids]})
    manifest = open_manifest(path)
    shards = [[i.item_id for i in manifest.items(shard=(k, 3))] for k in range(3)]
    assert sorted(sum(shards, [])) == sorted(ids)
    assert all(40 < len(s) < 90 for s in shards)
    assert shards[1] == [i for i in ids if in_shard(i, (1, 3))]
    left = [i.item_id for i in manifest.items(skip=IdSet.from_ids(ids[:150]))]
    assert left == ids[150:]


@pytest.mark.parametrize("ids,message", [
    (pa.array(["a", None], pa.string()), "has a null id"),
    (pa.array(["a", ""], pa.string()), "has an empty id"),
    (pa.array([b"a", b"b"], pa.binary()), "column 'id' holds binary"),
    (pa.array([[1], [2]], pa.list_(pa.int64())), "column 'id' holds list"),
    (pa.array([1.5, 2.5], pa.float64()), "column 'id' holds double"),
])
def test_odd_ids_are_refused_up_front_with_one_line(write_manifest, ids, message) -> None:
    path = write_manifest({"id": ids, "path": ["1.wav", "2.wav"]})
    with pytest.raises(ManifestError, match=message) as error:
        open_manifest(path).check_ids()
    assert "\n" not in str(error.value)


def test_integer_ids_are_kept_as_their_decimal_text(write_manifest) -> None:
    path = write_manifest({"id": [7, 12], "path": ["1.wav", "2.wav"]})
    manifest = open_manifest(path)
    manifest.check_ids()
    assert [i.item_id for i in manifest.items()] == ["7", "12"]


def test_an_empty_path_stays_empty_instead_of_naming_the_manifest_folder(write_manifest) -> None:
    path = write_manifest({"id": ["a"], "path": [""]})
    (item,) = open_manifest(path).items()
    assert item.path == ""


def test_an_id_derived_from_an_empty_path_is_refused(write_manifest) -> None:
    path = write_manifest({"path": ["1.wav", ""]})
    with pytest.raises(ManifestError, match="no id and no path"):
        open_manifest(path).check_ids()
