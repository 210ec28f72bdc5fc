"""The dataset build pipeline shared by the Bandai-Namco and BVH-folder builders.

One source clip (a BVH file) becomes one or more windows::

    BVH text -> parse_bvh -> to_smpl22 (SMPL-22 joints, metres, Y-up, 20 fps) -> cut the segment(s)
      -> extract_features (T - 1 frames) -> windows of at most ``max_frames`` feature frames
      -> new_joint_vecs = window features, new_joints = recover_from_ric(window features), texts = captions

Windows: a segment of L feature frames is cut into consecutive, non-overlapping windows of
``max_frames`` (196 frames, 9.8 s); the last, shorter piece is kept as a window when it has at least
``min_window_frames`` (40 frames, 2 s) and dropped otherwise. A segment that fits in one window is
kept whole if it has at least ``min_clip_frames`` (20 frames, 1 s) and skipped as too short otherwise
(many Bandai clips are 1-2 s; the trainers apply their own minimum length).

Splits are by source clip (windows of one clip never straddle splits), deterministic for a seed, and
stratified by the clip's group (Bandai: archive + content label): a group of n >= 3 clips puts
``max(1, round(0.1 n))`` clips in val and in test and the rest in train; smaller groups go to train.
Mean/Std are computed over the train windows only.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import random
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..motion.bvh import BvhError, parse_bvh
from ..motion.features import compute_mean_std, extract_features, recover_from_ric, std_groups
from ..motion.rig_map import RigMappingError, to_smpl22
from . import layout
from .humanml3d import format_text_line

BUILD_VERSION = 2  # bump when the output of a clip changes for the same input, so re-runs rebuild


class BuildError(RuntimeError):
    """The build cannot go on (bad arguments, nothing usable to build, statistics impossible)."""


@dataclass(frozen=True, kw_only=True)
class BuildSettings:
    fps: float = 20.0  # output frame rate
    max_frames: int = 196  # longest window, in feature frames (9.8 s)
    min_window_frames: int = 40  # shortest window cut from a longer clip (2 s)
    min_clip_frames: int = 20  # shortest whole clip kept (1 s)
    seed: int = 0  # split seed
    val_fraction: float = 0.1
    test_fraction: float = 0.1


@dataclass(frozen=True, kw_only=True)
class Segment:
    """A part of a source clip with its captions; ``start``/``end`` in seconds, None = clip start / end."""

    captions: tuple[str, ...]
    start: float | None = None
    end: float | None = None
    suffix: str = ""  # added to the clip id to name this segment's windows ("" for the whole clip)


@dataclass(kw_only=True)
class Job:
    clip: str  # unique id of the source clip; window ids derive from it
    source: str  # where it came from, for reports
    text: str  # BVH file text
    segments: list[Segment]
    group: str  # stratum for the split
    meta: dict = field(default_factory=dict)  # extra fields for meta.jsonl (archive, content, style, ...)

    def key(self, settings: BuildSettings) -> str:
        """Hash of everything that determines this clip's output files."""
        h = hashlib.sha256(self.text.encode("utf-8"))
        conversion = {k: v for k, v in asdict(settings).items() if k not in ("seed", "val_fraction", "test_fraction")}
        payload = [BUILD_VERSION, conversion, [asdict(s) for s in self.segments], self.clip]
        h.update(json.dumps(payload, sort_keys=True).encode("utf-8"))
        return h.hexdigest()


@dataclass
class Skip:
    source: str
    reason: str


def window_bounds(n_frames: int, settings: BuildSettings) -> list[tuple[int, int]]:
    """Half-open frame ranges of the windows of a segment with ``n_frames`` >= 1 frames."""
    if n_frames <= settings.max_frames:
        return [(0, n_frames)]
    bounds = [(start, min(start + settings.max_frames, n_frames)) for start in range(0, n_frames, settings.max_frames)]
    if bounds[-1][1] - bounds[-1][0] < settings.min_window_frames:
        bounds.pop()
    return bounds


def _segment_frames(segment: Segment, n_joint_frames: int, fps: float) -> tuple[int, int]:
    first = 0 if segment.start is None else int(round(segment.start * fps))
    last = n_joint_frames if segment.end is None else min(n_joint_frames, int(round(segment.end * fps)) + 1)
    return first, last  # joint frames [first, last); +1 because features need the next frame


def process_job(out: Path, settings: BuildSettings, job: Job, key: str) -> dict | Skip:
    """Convert and write one source clip; returns its record, or a Skip with the reason."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            converted = to_smpl22(parse_bvh(job.text, source=job.source), target_fps=settings.fps)
        except BvhError as exc:
            return Skip(job.source, f"malformed BVH: {exc}")
        except RigMappingError as exc:
            return Skip(job.source, f"rig mapping failed: {exc}")
        except ValueError as exc:  # other problems of this file's data (units, frame time, ...)
            return Skip(job.source, f"conversion failed: {exc}")
    joints, mapping = converted
    windows, problems = [], []
    for segment in job.segments:
        where = "" if not segment.suffix else f" (segment {segment.start}-{segment.end} s)"
        first, last = _segment_frames(segment, len(joints), settings.fps)
        n_frames = last - first - 1
        if n_frames < settings.min_clip_frames:
            problems.append(f"too short{where}: {max(n_frames, 0)} frames at {settings.fps:g} fps, "
                            f"need {settings.min_clip_frames}")
            continue
        try:
            features = extract_features(joints[first:last])
        except ValueError as exc:
            problems.append(f"feature extraction failed{where}: {exc}")
            continue
        bounds = window_bounds(len(features), settings)
        lines = [format_text_line(c) for c in segment.captions]
        for k, (start, end) in enumerate(bounds):
            window_id = job.clip + segment.suffix + (f"_w{k}" if len(bounds) > 1 else "")
            window = features[start:end]
            layout.write_window(out, window_id, window, recover_from_ric(window), lines)
            windows.append({"id": window_id, "start": first + start, "frames": len(window),
                            "captions": list(segment.captions)})
    if not windows:
        return Skip(job.source, "; ".join(problems))
    mapped = {"source_fps": mapping.source_fps, "source_frames": mapping.source_frames, "unit": mapping.unit,
              "up_axis": mapping.up_axis}
    record = {"clip": job.clip, "key": key, "source": job.source, "group": job.group, "meta": job.meta,
              "mapping": mapped, "skipped_segments": problems,
              "windows": windows, "warnings": sorted({str(w.message) for w in caught})}
    layout.write_json(layout.record_path(out, job.clip), record)
    return record


# -------------------------------------------------------------------------------------- worker pool

_WORKER: tuple[Path, BuildSettings] | None = None


def _init_worker(out: Path, settings: BuildSettings) -> None:
    global _WORKER
    _WORKER = (out, settings)
    import torch  # the features code uses torch; one thread per worker process

    torch.set_num_threads(1)


def _run_in_worker(item: tuple[Job, str]) -> dict | Skip:
    assert _WORKER is not None
    return process_job(*_WORKER, *item)


def _bounded(items: Iterable, limit: threading.Semaphore) -> Iterator:
    """Pool.imap reads its input eagerly; this holds back until earlier results are consumed."""
    for item in items:
        limit.acquire()
        yield item


# ------------------------------------------------------------------------------------------- splits

def assign_splits(groups: dict[str, str], settings: BuildSettings) -> dict[str, str]:
    """{clip: "train" | "val" | "test"} stratified by group; independent of dict order."""
    by_group: dict[str, list[str]] = {}
    for clip, group in groups.items():
        by_group.setdefault(group, []).append(clip)
    split = {}
    for group, clips in sorted(by_group.items()):
        clips.sort()
        random.Random(f"{settings.seed}:{group}").shuffle(clips)
        n = len(clips)
        n_val = max(1, round(settings.val_fraction * n)) if n >= 3 else 0
        n_test = max(1, round(settings.test_fraction * n)) if n >= 3 else 0
        for i, clip in enumerate(clips):
            split[clip] = "val" if i < n_val else "test" if i < n_val + n_test else "train"
    return split


# -------------------------------------------------------------------------------------------- build

def run_build(jobs: Iterable[Job | Skip], out: str | Path, *, settings: BuildSettings = BuildSettings(),
              workers: int = 2, progress: bool = False, extra_report: dict | None = None) -> dict:
    """Build the dataset folder ``out`` from ``jobs`` (Skips from the reader are reported as is).

    ``workers`` > 1 converts clips in that many processes; 1 converts in this process. Clips whose
    record matches their input are reused; the result is the same either way. Returns the report,
    also written to ``<out>/build_report.json``.
    """
    if workers < 1:
        raise BuildError(f"workers must be at least 1, got {workers}")
    out = Path(out)
    t0 = time.perf_counter()
    layout.prepare(out)
    records: list[dict] = []
    skipped: list[Skip] = []
    reused = 0

    def todo() -> Iterator[tuple[Job, str]]:
        nonlocal reused
        for job in jobs:
            if isinstance(job, Skip):
                skipped.append(job)
                continue
            key = job.key(settings)
            record = layout.read_record(out, job.clip, key)
            if record is not None:
                records.append(record)
                reused += 1
            else:
                yield job, key

    from tqdm import tqdm

    bar = tqdm(desc="clips", unit="clip", disable=not progress)
    if workers == 1:
        results: Iterable = (process_job(out, settings, *item) for item in todo())
    else:
        limit = threading.Semaphore(8 * workers)
        pool = multiprocessing.Pool(workers, _init_worker, (out, settings))
        results = _release_after(pool.imap(_run_in_worker, _bounded(todo(), limit)), limit)
    try:
        for result in results:
            (skipped if isinstance(result, Skip) else records).append(result)
            bar.update(1)
    finally:
        bar.close()
        if workers > 1:
            pool.terminate()
            pool.join()
    return _finish(out, records, skipped, reused, settings, workers, time.perf_counter() - t0, extra_report)


def _release_after(results: Iterable, limit: threading.Semaphore) -> Iterator:
    for result in results:
        limit.release()
        yield result


def _finish(out: Path, records: list[dict], skipped: list[Skip], reused: int, settings: BuildSettings,
            workers: int, seconds: float, extra_report: dict | None) -> dict:
    skipped = skipped + [Skip(r["source"], p) for r in records for p in r["skipped_segments"]]
    clips = {r["clip"]: r for r in records}
    if len(clips) != len(records):
        raise BuildError("two source clips have the same id; ids must be unique")
    if not clips:
        reasons = "; ".join(f"{s.source}: {s.reason}" for s in skipped[:5])
        raise BuildError(f"no clip could be built{': ' + reasons if reasons else ''}")
    split_of = assign_splits({c: r["group"] for c, r in clips.items()}, settings)
    splits: dict[str, list[str]] = {s: [] for s in layout.SPLITS}
    meta, train_features, frames = [], [], 0
    for clip in sorted(clips):
        record = clips[clip]
        for window in record["windows"]:
            splits[split_of[clip]].append(window["id"])
            meta.append({"id": window["id"], "clip": clip, "source": record["source"], "split": split_of[clip],
                         "start": window["start"], "frames": window["frames"], "fps": settings.fps,
                         **record["meta"]})
            frames += window["frames"]
            if split_of[clip] == "train":
                train_features.append(np.load(layout.window_paths(out, window["id"])[0]))
    if not train_features:
        raise BuildError("the train split is empty; Mean/Std need training clips")
    mean, std, stats_note = _mean_std(train_features)
    layout.prune(out, set(clips), {m["id"] for m in meta}, layout.owned_ids(out))
    report = {
        "clips": len(clips), "clips_converted": len(clips) - reused, "clips_reused": reused,
        "windows": len(meta), "frames": frames, "minutes": round(frames / settings.fps / 60.0, 2),
        "splits": {s: {"clips": sum(1 for c in clips if split_of[c] == s), "windows": len(ids)}
                   for s, ids in splits.items()},
        "skipped": sorted(({"source": s.source, "reason": s.reason} for s in skipped), key=lambda s: s["source"]),
        "warnings": {r["source"]: r["warnings"] for r in sorted(records, key=lambda r: r["source"]) if r["warnings"]},
        "stats": stats_note or "Mean/Std over the train windows (HumanML3D grouping)",
        "settings": asdict(settings), "workers": workers, "seconds": round(seconds, 2),
        **(extra_report or {}),
    }
    layout.write_final(out, splits={s: sorted(ids) for s, ids in splits.items()}, meta=meta, mean=mean, std=std,
                       report=report)
    return report


def _mean_std(train_features: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, str]:
    """``compute_mean_std`` over the train windows; a feature group that is constant there (e.g. the foot
    contacts of a few clips that never step) gets Std 1 instead of failing, and the note says so."""
    try:
        mean, std = compute_mean_std(train_features)
        return mean, std, ""
    except ValueError:
        data = np.concatenate(train_features).astype(np.float64)
    mean, std = data.mean(axis=0), data.std(axis=0)
    constant = []
    for name, group in std_groups().items():
        std[group] = std[group].mean()
        if std[group][0] == 0:
            std[group], constant = 1.0, constant + [name]
    note = f"feature groups constant over the train split, Std set to 1: {', '.join(constant)}"
    return mean.astype(np.float32), std.astype(np.float32), note


def format_report(report: dict) -> str:
    """A short human-readable summary of a build report."""
    lines = [f"built {report['clips']} clips -> {report['windows']} windows, {report['minutes']} min "
             f"({report['clips_converted']} converted, {report['clips_reused']} reused) in {report['seconds']} s"]
    lines += [f"  {s}: {v['clips']} clips, {v['windows']} windows" for s, v in report["splits"].items()]
    if report["skipped"]:
        lines.append(f"skipped {len(report['skipped'])} files:")
        lines += [f"  {s['source']}: {s['reason']}" for s in report["skipped"]]
    return "\n".join(lines)
