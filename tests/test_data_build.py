"""Dataset builders (Bandai-Namco archives, BVH folder + CSV), their crash safety, the CLI and the loader."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from model_core.data import cli, layout
from model_core.data.build import BuildError, BuildSettings, window_bounds
from model_core.data.build_bandai import build_bandai
from model_core.data.build_bvh import build_bvh_folder, read_captions_csv
from model_core.data.humanml3d import DatasetError, load_split, load_stats, parse_text_file
from model_core.motion.features import recover_from_ric
from support.bandai import first_bvh_texts

pytestmark = pytest.mark.data
LIMIT = 45  # dataset-1 in archive order: 14 bow, 14 bye, 14 byebye, call, dance-short (1901 frames), dash
SMALL = 8


def _files(root: Path) -> dict[str, bytes]:
    """Every file of a build except the report (it holds timings)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "build_report.json"}


def _split_ids(root: Path) -> dict[str, list[str]]:
    return {s: (root / f"{s}.txt").read_text().split() for s in layout.SPLITS}


@pytest.fixture(scope="module")
def bandai_build(bandai_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bandai")
    report = build_bandai(bandai_dir, out, workers=1, limit=LIMIT, archives=("dataset-1",))
    return out, report


@pytest.fixture(scope="module")
def small_build(bandai_dir, tmp_path_factory):
    """A clean build of the first few clips, the reference for the re-run and crash tests."""
    out = tmp_path_factory.mktemp("small")
    build_bandai(bandai_dir, out, workers=1, limit=SMALL, archives=("dataset-1",))
    return out


@pytest.fixture(scope="module")
def bvh_texts(bandai_dir) -> dict[str, str]:
    """The first few BVH files of dataset-1 (all 'bow' clips, 2 to 5 s long)."""
    return first_bvh_texts(bandai_dir, 4)


def test_bandai_layout_shapes_captions_and_windows(bandai_build):
    out, report = bandai_build
    meta = [json.loads(line) for line in (out / "meta.jsonl").read_text().splitlines()]
    ids = sorted(p.stem for p in (out / "new_joint_vecs").glob("*.npy"))
    assert ids == sorted(m["id"] for m in meta) and len(ids) == report["windows"]
    for m in meta:
        features = np.load(out / "new_joint_vecs" / f"{m['id']}.npy")
        joints = np.load(out / "new_joints" / f"{m['id']}.npy")
        assert features.dtype == joints.dtype == np.float32
        assert features.shape == (m["frames"], 263) and joints.shape == (m["frames"], 22, 3)
        assert 20 <= m["frames"] <= 196 and np.isfinite(features).all()
        assert np.array_equal(joints, recover_from_ric(features))
        lines = (out / "texts" / f"{m['id']}.txt").read_text().splitlines()
        captions = [line.split("#") for line in lines]
        assert all(len(c) == 4 and c[2:] == ["0.0", "0.0"] and "/" in c[1] for c in captions)
        assert len({c[0] for c in captions}) == len(captions) >= 5
        assert {"id", "archive", "source", "content", "style", "start", "frames"} <= set(m)
        assert m["content"] in m["id"] and m["style"] in m["id"] and m["archive"] == "dataset-1"
        assert m["content"].split("-")[0] in " ".join(c[0] for c in captions) or m["content"] in (
            "bye", "byebye", "call", "guide", "respond", "dance-short", "dash")


def test_bandai_frame_counts_follow_the_source_at_20_fps(bandai_build):
    out, _ = bandai_build
    for record_path in (out / "records").glob("*.json"):
        record = json.loads(record_path.read_text())
        source_frames = record["mapping"]["source_frames"]
        assert record["mapping"]["source_fps"] == 30.0
        joint_frames = (source_frames - 1) * 20 // 30 + 1  # 20-fps samples inside the 30-fps clip
        features = joint_frames - 1
        windows = record["windows"]
        expected = window_bounds(features, BuildSettings())
        assert [(w["start"], w["start"] + w["frames"]) for w in windows] == expected
        assert abs(features - 2 / 3 * source_frames) <= 2
    dance = json.loads((out / "records" / "dataset-1_dance-short_normal_001.json").read_text())
    assert [w["frames"] for w in dance["windows"]] == [196] * 6 + [1266 - 6 * 196]  # 1901 frames at 30 fps


@pytest.mark.parametrize("frames,expected", [
    (20, [(0, 20)]), (196, [(0, 196)]), (197, [(0, 196)]), (235, [(0, 196)]), (236, [(0, 196), (196, 236)]),
    (600, [(0, 196), (196, 392), (392, 588)]),
])
def test_window_bounds(frames, expected):
    assert window_bounds(frames, BuildSettings()) == expected


def test_bandai_splits_by_clip_and_stratified(bandai_build):
    out, report = bandai_build
    splits = _split_ids(out)
    listed = [i for ids in splits.values() for i in ids]
    assert len(listed) == len(set(listed)) == report["windows"]
    meta = {m["id"]: m for m in map(json.loads, (out / "meta.jsonl").read_text().splitlines())}
    split_of_clip: dict[str, set[str]] = {}
    for split, ids in splits.items():
        for i in ids:
            split_of_clip.setdefault(meta[i]["clip"], set()).add(split)
    assert all(len(s) == 1 for s in split_of_clip.values())  # windows of a clip share its split
    for content in ("bow", "bye", "byebye"):  # 14 clips each: 1 val, 1 test, 12 train
        clips = {m["clip"]: m["split"] for m in meta.values() if m["content"] == content}
        assert sorted(clips.values()).count("val") == 1 and sorted(clips.values()).count("test") == 1
    assert meta["dataset-1_call_normal_001"]["split"] == "train"  # a single clip cannot be in every split


def test_bandai_mean_std_from_train_only(bandai_build):
    out, report = bandai_build
    mean, std = load_stats(out)
    assert mean.shape == std.shape == (263,) and np.isfinite(mean).all() and (std > 0).all()
    train = np.concatenate([np.load(out / "new_joint_vecs" / f"{i}.npy") for i in _split_ids(out)["train"]])
    everything = np.concatenate([np.load(p) for p in sorted((out / "new_joint_vecs").glob("*.npy"))])
    assert np.allclose(mean, train.mean(axis=0), atol=1e-5)
    assert not np.allclose(mean, everything.mean(axis=0), atol=1e-5)
    assert report["splits"]["train"]["clips"] + report["splits"]["val"]["clips"] + \
        report["splits"]["test"]["clips"] == report["clips"] == LIMIT


def test_rerun_reuses_clips_and_gives_identical_files(bandai_build, bandai_dir):
    out, _ = bandai_build
    before = _files(out)
    report = build_bandai(bandai_dir, out, workers=1, limit=LIMIT, archives=("dataset-1",))
    assert report["clips_reused"] == LIMIT and report["clips_converted"] == 0
    assert _files(out) == before


def test_two_workers_give_the_same_files(small_build, bandai_dir, tmp_path):
    report = build_bandai(bandai_dir, tmp_path, workers=2, limit=SMALL, archives=("dataset-1",))
    assert report["clips_converted"] == SMALL and _files(tmp_path) == _files(small_build)


def test_crash_mid_write_leaves_nothing_valid_and_rerun_matches_clean_build(small_build, bandai_dir, tmp_path,
                                                                           monkeypatch):
    real_save, calls = np.save, []

    def failing_save(file, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 6:  # 3rd clip: its features are saved, its joints fail
            raise OSError("disk full (simulated)")
        return real_save(file, array, *args, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="simulated"):
        build_bandai(bandai_dir, tmp_path, workers=1, limit=SMALL, archives=("dataset-1",))
    monkeypatch.setattr(np, "save", real_save)
    assert not any((tmp_path / f"{s}.txt").exists() for s in layout.SPLITS)
    assert not (tmp_path / "Mean.npy").exists()
    records = sorted(p.stem for p in (tmp_path / "records").glob("*.json"))
    assert len(records) == 2  # only the two finished clips are committed
    third = sorted(p.stem for p in (tmp_path / "new_joint_vecs").glob("*.npy"))[2]
    assert third not in records and not (tmp_path / "new_joints" / f"{third}.npy").exists()
    assert not list(tmp_path.rglob(".tmp-*"))
    report = build_bandai(bandai_dir, tmp_path, workers=1, limit=SMALL, archives=("dataset-1",))
    assert report["clips_reused"] == 2 and report["clips_converted"] == SMALL - 2
    assert _files(tmp_path) == _files(small_build)


def _write_folder(folder: Path, texts: dict[str, str]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(texts)
    for name in names:
        (folder / name).write_text(texts[name])
    return names


def test_bvh_folder_with_bad_files_reports_them_and_builds_the_rest(bvh_texts, tmp_path):
    names = _write_folder(tmp_path / "in", bvh_texts)
    good = bvh_texts[names[0]]
    (tmp_path / "in" / "broken.bvh").write_text(good[: good.index("MOTION") // 2])
    header, motion = good.split("MOTION", 1)
    rows = motion.strip().splitlines()
    (tmp_path / "in" / "short.bvh").write_text(
        header + "MOTION\nFrames: 10\n" + rows[1] + "\n" + "\n".join(rows[2:12]) + "\n")
    (tmp_path / "in" / "tiny_rig.bvh").write_text(
        "HIERARCHY\nROOT Foo\n{\n OFFSET 0 0 0\n CHANNELS 3 Xposition Yposition Zposition\n"
        " End Site\n {\n  OFFSET 0 1 0\n }\n}\nMOTION\nFrames: 2\nFrame Time: 0.0333333\n0 0 0\n0 0 1\n")
    (tmp_path / "in" / "uncaptioned.bvh").write_text(good)
    csv_rows = ["file,caption"] + [f"{n},a person bows." for n in names + ["broken.bvh", "short.bvh",
                                                                         "tiny_rig.bvh", "missing.bvh"]]
    (tmp_path / "captions.csv").write_text("\n".join(csv_rows) + "\n")
    report = build_bvh_folder(tmp_path / "in", tmp_path / "captions.csv", tmp_path / "out", workers=1)
    reasons = {Path(s["source"]).name: s["reason"] for s in report["skipped"]}
    assert reasons["broken.bvh"].startswith("malformed BVH") and "broken.bvh" in reasons["broken.bvh"]
    assert reasons["short.bvh"].startswith("too short")
    assert reasons["tiny_rig.bvh"].startswith("rig mapping failed")
    assert "not found" in reasons["missing.bvh"] and "no caption" in reasons["uncaptioned.bvh"]
    assert report["clips"] == len(names)
    built = json.loads((tmp_path / "out" / "build_report.json").read_text())
    assert built["skipped"] == report["skipped"]


def test_bvh_folder_with_caption_ranges(bvh_texts, tmp_path):
    names = _write_folder(tmp_path / "in" / "sub", bvh_texts)
    rows = ["file,caption,start,end"]
    for n in names:
        rows += [f"sub/{n},someone bows politely.,,", f"sub/{n},\"a person bends over, then stands up\",,",
                 f"sub/{n},a man lowers his head,0.5,2"]
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    report = build_bvh_folder(tmp_path / "in", tmp_path / "c.csv", out, workers=1)
    assert report["clips"] == len(names) and report["windows"] == 2 * len(names)
    stem = "sub__" + names[0][:-4]
    whole = parse_text_file(out / "texts" / f"{stem}.txt", 10)
    assert [c.text for c in whole] == ["someone bows politely.", "a person bends over, then stands up"]
    part = np.load(out / "new_joint_vecs" / f"{stem}_s0.npy")
    assert part.shape == (30, 263)  # 0.5 s to 2 s at 20 fps
    assert [c.text for c in parse_text_file(out / "texts" / f"{stem}_s0.txt", 30)] == ["a man lowers his head"]
    assert np.array_equal(np.load(out / "new_joints" / f"{stem}_s0.npy"), recover_from_ric(part))
    splits = _split_ids(out)
    for split, ids in splits.items():  # a file's segments stay in one split
        assert all((i.removesuffix("_s0") in ids) == (i.removesuffix("_s0") + "_s0" in ids) for i in ids)
    assert sum(len(v) for v in splits.values()) == 2 * len(names) and len(splits["train"]) >= 2


@pytest.mark.parametrize("text,message", [
    ("name,caption\na.bvh,x\n", "missing column"),
    ("file,caption,start\na.bvh,x,soon\n", r"c\.csv:2: start 'soon' is not a number"),
    ("file,caption,start,end\na.bvh,x,2,1\n", "end .* must be after start"),
    ("file,caption\na.bvh,x # y\n", "must not contain '#'"),
    ("file,caption\n", "no caption rows"),
])
def test_captions_csv_errors_name_the_line(tmp_path, text, message):
    (tmp_path / "c.csv").write_text(text)
    with pytest.raises(BuildError, match=message):
        read_captions_csv(tmp_path / "c.csv")


def test_cli_builds_and_reports_bad_input_without_traceback(bvh_texts, tmp_path, capsys):
    names = _write_folder(tmp_path / "in", bvh_texts)
    (tmp_path / "c.csv").write_text("file,caption\n" + "".join(f"{n},a person bows.\n" for n in names))
    out = tmp_path / "out"
    assert cli.main("data", ["build", "bvh", str(tmp_path / "in"), "--captions", str(tmp_path / "c.csv"),
                             "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert f"built {len(names)} clips" in capsys.readouterr().out
    assert len(load_split(out, "train")) >= 2
    assert cli.main("data", ["info", str(out)]) == 0
    bad = [(["build", "bvh", str(tmp_path / "in"), "--out", str(out)], 2, "--captions"),
           (["build", "bandai", str(tmp_path / "nowhere"), "--out", str(out)], 1, "does not exist"),
           (["build", "bandai", str(tmp_path), "--out", str(out), "--workers", "0"], 2, "at least 1"),
           (["build", "bandai", str(tmp_path), "--out", str(out), "--captions-per-clip", "0"], 2, "at least 1"),
           (["build", "bvh", str(tmp_path / "in"), "--captions", str(tmp_path / "no.csv"), "--out", str(out)], 1,
            "no.csv not found")]
    for argv, code, message in bad:
        assert cli.main("data", argv) == code
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------- loader

def _tiny_dataset(root: Path, dim: int = 263) -> None:
    rng = np.random.default_rng(0)
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    for i, frames in (("000001", 80), ("000002", 120), ("M000001", 80)):
        np.save(root / "new_joint_vecs" / f"{i}.npy", rng.normal(size=(frames, dim)).astype(np.float32))
        (root / "texts" / f"{i}.txt").write_text(
            "a person walks.#a/DET person/NOUN walk/VERB#0.0#0.0\n"
            "then they jump.#then/ADV they/PRON jump/VERB#2.0#3.5\n"
            "out of range.#out/ADP#5.0#9.0\n\n")
    np.save(root / "Mean.npy", np.zeros(dim, np.float32))
    np.save(root / "Std.npy", np.ones(dim, np.float32))
    (root / "train.txt").write_text("000001\nM000001\n")
    (root / "val.txt").write_text("000002\nmissing\n")


@pytest.mark.parametrize("dim", [263, 251])  # HumanML3D and KIT-ML
def test_loader_on_a_tiny_folder(tmp_path, dim):
    _tiny_dataset(tmp_path, dim)
    clips = load_split(tmp_path, "train")
    assert [c.id for c in clips] == ["000001", "M000001"]
    first = clips[0]
    assert first.features.shape == (80, dim) and first.features.dtype == np.float32
    assert [(c.text, c.start_frame, c.end_frame) for c in first.captions] == [
        ("a person walks.", 0, 80), ("then they jump.", 40, 70)]  # 5-9 s lies beyond the 4 s clip
    assert first.captions[0].tokens == "a/DET person/NOUN walk/VERB" and first.meta == {}
    mean, std = load_stats(tmp_path)
    assert mean.shape == std.shape == (dim,)
    with pytest.raises(DatasetError, match="lists 'missing'"):
        load_split(tmp_path, "val")
    assert [c.id for c in load_split(tmp_path, "val", skip_missing=True)] == ["000002"]
    with pytest.raises(DatasetError, match=r"test\.txt not found .*train, val"):
        load_split(tmp_path, "test")
    with pytest.raises(DatasetError, match="does not exist"):
        load_split(tmp_path / "nope", "train")
    np.save(tmp_path / "Std.npy", np.zeros(dim, np.float32))
    with pytest.raises(DatasetError, match="zero"):
        load_stats(tmp_path)


def test_loader_on_the_official_example_files(hml_dir, tmp_path):
    for sub in ("new_joint_vecs", "texts"):
        (tmp_path / sub).mkdir()
    shutil.copy(hml_dir / "new_joint_vecs" / "000000.npy", tmp_path / "new_joint_vecs")
    shutil.copy(hml_dir / "texts" / "000000.txt", tmp_path / "texts")
    for name in ("Mean.npy", "Std.npy"):
        shutil.copy(hml_dir / name, tmp_path)
    (tmp_path / "test.txt").write_text("000000\n")
    (clip,) = load_split(tmp_path, "test")
    assert clip.features.shape[1] == 263 and len(clip.captions) == 4
    assert clip.captions[0].text == "a man kicks something or someone with his left leg."
    assert all((c.start_frame, c.end_frame) == (0, len(clip.features)) for c in clip.captions)
    mean, std = load_stats(tmp_path)
    assert mean.shape == (263,) and (std > 0).all()


def test_loader_reads_a_built_dataset_with_meta(bandai_build):
    out, report = bandai_build
    clips = {s: load_split(out, s) for s in layout.SPLITS}
    assert sum(len(c) for c in clips.values()) == report["windows"]
    clip = clips["train"][0]
    assert clip.meta["id"] == clip.id and clip.meta["archive"] == "dataset-1"
    assert len(clip.captions) >= 5 and all(c.end_frame == len(clip.features) for c in clip.captions)
    assert math.isclose(sum(len(c.features) for s in clips.values() for c in s) / 20 / 60, report["minutes"],
                        abs_tol=0.01)


def test_cli_writes_the_asked_number_of_captions_per_clip(bandai_dir, tmp_path):
    out = tmp_path / "out"
    assert cli.main("data", ["build", "bandai", str(bandai_dir), "--out", str(out), "--limit", "2",
                             "--archives", "dataset-1", "--workers", "1", "--captions-per-clip", "11",
                             "--quiet"]) == 0
    texts = sorted((out / "texts").glob("*.txt"))
    assert texts and all(len(set(t.read_text().splitlines())) == 11 for t in texts)
