"""End to end: tools/extract_features.py on generated videos with tiny random models.

Outputs are read back with the data layer's stores; resume, sharding, failure reporting, the output
formats, the backbones and text mode are each checked.
"""

import contextlib
import importlib.util
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("decord")
pytest.importorskip("imageio_ffmpeg")

from grounding.data.features import HDF5Store, NpyFolderStore, NpzFolderStore  # noqa: E402
from grounding.data.manifest import read_manifest  # noqa: E402
from grounding.errors import GroundingError  # noqa: E402
from grounding.extract import synthetic  # noqa: E402
from grounding.extract.pipeline import ExtractConfig, extract_videos  # noqa: E402
from grounding.extract.queries import TextExtractConfig, extract_text  # noqa: E402
from tests import fakes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# name -> (frames, fps, codec, expected 1 s clips under ceil, duration)
VIDEOS = {
    "ntsc.mp4": (100, "30000/1001", "libx264", 4, 100 / (30000 / 1001)),
    "pal.webm": (80, "25", "libvpx-vp9", 4, 3.2),
    "sub/jpeg.avi": (50, "12", "mjpeg", 5, 50 / 12),
    "film.mkv": (60, "24000/1001", "mpeg4", 3, 60 / (24000 / 1001)),
    "phone.mov": (45, "30", "libx264", 2, 1.5),
}


def _load_tool():
    spec = importlib.util.spec_from_file_location("extract_features_tool", ROOT / "tools/extract_features.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tool():
    return _load_tool()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A folder of good videos in several containers plus one corrupt .mp4; returns (folder, expected)."""
    folder = tmp_path_factory.mktemp("videos")
    expected = {}
    for name, (frames, fps, codec, clips, duration) in VIDEOS.items():
        if synthetic.has_encoder(codec):
            synthetic.make_video(folder / name, frames, fps, codec=codec)
            expected[Path(name).stem] = (clips, duration)
    fakes.make_corrupt_video(folder / "broken.mp4")
    return folder, expected


@pytest.fixture(scope="module")
def good_list(videos, tmp_path_factory):
    """A list file of the good videos only."""
    folder, expected = videos
    listing = tmp_path_factory.mktemp("lists") / "good.txt"
    listing.write_text("\n".join(str(p) for p in sorted(folder.rglob("*.*")) if p.stem in expected) + "\n")
    return listing


@pytest.fixture(scope="module")
def clip_model(tmp_path_factory):
    return synthetic.save_random_clip(tmp_path_factory.mktemp("clip"))


def _config(videos, out, model, **kw):
    kw.setdefault("clip_len", 1.0)
    kw.setdefault("num_workers", 0)
    return ExtractConfig(videos=videos, out=out, backbone=kw.pop("backbone", "clip"), model=model, progress=False, **kw)


@pytest.fixture(scope="module")
def first_run(videos, clip_model, tool, tmp_path_factory):
    """The command line over the folder with the corrupt file: (exit code, stdout+stderr, out folder)."""
    out = tmp_path_factory.mktemp("features")
    argv = ["--videos", str(videos[0]), "--out", str(out), "--backbone", "clip", "--model", str(clip_model),
            "--clip-len", "1", "--num-workers", "0", "--no-progress"]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        code = tool.main(argv)
    return code, buffer.getvalue(), out


def test_every_container_extracts_to_the_expected_clip_count(first_run, videos):
    _, _, out = first_run
    _, expected = videos
    store = NpyFolderStore(out)
    manifest = read_manifest(out)
    assert set(manifest) == set(expected)
    for vid, (clips, duration) in expected.items():
        feats = store.load(vid)
        assert feats.shape == (clips, 16) and feats.dtype == np.float32 and np.isfinite(feats).all()
        record = manifest[vid]
        assert record["clips"] == clips and record["feature_dim"] == 16
        assert record["duration"] == pytest.approx(duration, abs=1e-3)
        assert record["seconds_per_clip"] == 1.0 and record["backbone"] == "clip" and record["frames_per_clip"] == 1
    assert not list(out.glob(".*tmp"))  # no temporary files left


def test_corrupt_file_is_reported_by_name_and_the_run_goes_on(first_run, videos):
    code, output, _ = first_run
    assert code == 1
    assert "broken.mp4" in output and "not a readable video" in output
    assert f"{len(videos[1])} extracted" in output and "1 failed" in output


def test_second_run_skips_what_is_done_and_retries_failures(first_run, videos, clip_model):
    _, _, out = first_run
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    summary = extract_videos(_config(videos[0], out, clip_model))
    assert summary.skipped == len(videos[1]) and summary.done == 0
    assert [name.split()[0] for name, _ in summary.failures] == ["broken"]  # the failure is tried again
    assert summary.exit_code == 1
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")} == before


def test_resume_redoes_a_video_whose_output_is_missing(videos, good_list, clip_model, tmp_path):
    first = extract_videos(_config(good_list, tmp_path, clip_model))
    assert first.exit_code == 0 and first.done == len(videos[1])
    (tmp_path / "ntsc.npy").unlink()
    again = extract_videos(_config(good_list, tmp_path, clip_model))
    assert (again.done, again.skipped) == (1, len(videos[1]) - 1)
    assert NpyFolderStore(tmp_path).load("ntsc").shape == (4, 16)


def test_two_shards_partition_the_videos(videos, good_list, clip_model, tmp_path):
    done = []
    for index in range(2):
        summary = extract_videos(_config(good_list, tmp_path, clip_model, shard=(index, 2)))
        done.append(summary.done)
    assert sum(done) == len(videos[1]) and min(done) >= 2
    assert set(read_manifest(tmp_path)) == set(videos[1])


def test_npz_and_hdf5_hold_the_same_features_as_npy(good_list, clip_model, first_run, tmp_path):
    reference = NpyFolderStore(first_run[2])
    for fmt, store in [("npz", NpzFolderStore), ("hdf5", HDF5Store)]:
        out = tmp_path / fmt
        assert extract_videos(_config(good_list, out, clip_model, fmt=fmt)).exit_code == 0
        loaded = store(out / "features.h5") if fmt == "hdf5" else store(out)
        for vid in read_manifest(out):
            np.testing.assert_allclose(loaded.load(vid), reference.load(vid), rtol=1e-5, atol=1e-6)


def test_workers_and_batch_size_do_not_change_features(good_list, clip_model, first_run, tmp_path):
    summary = extract_videos(_config(good_list, tmp_path, clip_model, num_workers=2, batch_size=1))
    assert summary.exit_code == 0
    reference, store = NpyFolderStore(first_run[2]), NpyFolderStore(tmp_path)
    for vid in read_manifest(tmp_path):
        np.testing.assert_allclose(store.load(vid), reference.load(vid), rtol=1e-5, atol=1e-6)


def test_clip_rate_count_rule_and_frames_per_clip_options(tool, videos, clip_model, tmp_path, capsys):
    ntsc = videos[0] / "ntsc.mp4"
    listing = tmp_path / "one.txt"
    listing.write_text(f"{ntsc}\n")
    argv = ["--videos", str(listing), "--backbone", "clip", "--model", str(clip_model), "--no-progress"]
    assert tool.main([*argv, "--out", str(tmp_path / "a"), "--fps", "0.5"]) == 0  # 3.34 s at 2 s clips: 2
    assert tool.main([*argv, "--out", str(tmp_path / "b"), "--clip-len", "1", "--clip-count", "floor"]) == 0
    assert tool.main([*argv, "--out", str(tmp_path / "c"), "--clip-len", "1", "--frames-per-clip", "4"]) == 0
    assert NpyFolderStore(tmp_path / "a").load("ntsc").shape == (2, 16)
    assert NpyFolderStore(tmp_path / "b").load("ntsc").shape == (3, 16)
    assert read_manifest(tmp_path / "c")["ntsc"]["frames_per_clip"] == 4
    assert NpyFolderStore(tmp_path / "c").load("ntsc").shape == (4, 16)


def test_id_map_names_the_feature_files(videos, clip_model, tmp_path):
    folder, _ = videos
    ids = tmp_path / "ids.csv"
    ids.write_text(f"path,vid\n{folder / 'ntsc.mp4'},3MSZA\n")
    listing = tmp_path / "one.txt"
    listing.write_text(f"{folder / 'ntsc.mp4'}\n")
    assert extract_videos(_config(listing, tmp_path / "out", clip_model, id_map=ids)).done == 1
    assert NpyFolderStore(tmp_path / "out").load("3MSZA").shape == (4, 16)


@pytest.mark.parametrize("kind", ["videomae", "xclip"])
def test_video_transformer_backbones(kind, videos, clip_model, tmp_path):
    folder, _ = videos
    save = synthetic.save_random_videomae if kind == "videomae" else synthetic.save_random_xclip
    model = save(tmp_path / "model", num_frames=4)
    listing = tmp_path / "one.txt"
    listing.write_text(f"{folder / 'film.mkv'}\n")
    summary = extract_videos(_config(listing, tmp_path / "out", model, backbone=kind))
    assert summary.exit_code == 0
    feats = NpyFolderStore(tmp_path / "out").load("film")
    assert feats.shape == (3, 32 if kind == "videomae" else 16)
    assert read_manifest(tmp_path / "out")["film"]["frames_per_clip"] == 4
    with pytest.raises(GroundingError, match="4-frame video model"):
        extract_videos(_config(listing, tmp_path / "out2", model, backbone=kind, frames_per_clip=8))


def test_full_clip_checkpoint_loads_its_image_tower(good_list, tmp_path):
    model = synthetic.save_random_clip(tmp_path / "full", full_model=True)
    summary = extract_videos(_config(good_list, tmp_path / "out", model))
    assert summary.exit_code == 0 and summary.features > 0


def test_user_errors_exit_2_with_a_clear_message(tool, videos, clip_model, tmp_path, capsys):
    base = ["--videos", str(videos[0]), "--out", str(tmp_path / "o"), "--backbone", "clip", "--no-progress"]
    cases = [
        (["--model", str(tmp_path / "no_model")], "not a transformers model folder"),
        (["--model", str(clip_model), "--format", "hdf5", "--shard", "0/2"], "--format hdf5"),
        (["--model", str(clip_model), "--shard", "2/2"], "--shard"),
    ]
    for extra, message in cases:
        with pytest.raises(SystemExit) as info:
            tool.main([*base, *extra])
        assert info.value.code == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # argparse: video mode needs --backbone
        tool.main(["--videos", str(videos[0]), "--out", str(tmp_path / "o")])
    assert info.value.code == 2


def test_text_mode_writes_token_and_sentence_features(tool, tmp_path):
    sentences = ["A person opens the door.", "The person walks in the room.", "a person opens the door."]
    model = fakes.save_random_bert(tmp_path / "bert", " ".join(sentences).replace(".", " .").split())
    native = tmp_path / "val.jsonl"
    native.write_text(
        "".join(json.dumps({"qid": i, "query": s, "vid": "v1", "duration": 30.0, "relevant_windows": [[0, 5]]}) + "\n"
                for i, s in enumerate(sentences))
    )
    out = tmp_path / "text"
    argv = ["--text", str(native), "--dataset", "native", "--out", str(out), "--model", str(model), "--no-progress"]
    assert tool.main(argv) == 0
    store = NpzFolderStore(out)
    tokens = store.load("0")
    assert tokens.shape == (8, 32) and tokens.dtype == np.float32  # [CLS] a person opens the door . [SEP]
    with np.load(out / "0.npz") as archive:
        assert archive["pooled"].shape == (32,)
        np.testing.assert_allclose(archive["pooled"], tokens.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(store.load("2"), tokens, rtol=1e-5, atol=1e-6)  # same words, lower-cased
    assert read_manifest(out, key="qid")["1"]["tokens"] == 9
    again = extract_text(TextExtractConfig(native, "native", model, out, progress=False))
    assert (again.done, again.skipped) == (0, 3)


def test_text_mode_reads_charades_sta_without_durations(tmp_path):
    model = synthetic.save_random_clip(tmp_path / "clip", full_model=True)  # CLIP's own text tower
    words = "person opens door"
    tokenizer_dir = fakes.save_random_bert(tmp_path / "tok", words.split())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, model / name)
    annotation = tmp_path / "charades_sta_test.txt"
    annotation.write_text("3MSZA 0.0 4.2##person opens door.\nAB12C 1.0 3.0##person opens door\n")
    summary = extract_text(TextExtractConfig(annotation, "charades_sta", model, tmp_path / "out", progress=False))
    assert summary.done == 2
    with np.load(tmp_path / "out/0.npz") as archive:
        assert archive["features"].shape[1] == 32 and archive["pooled"].shape == (32,)
