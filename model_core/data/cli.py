"""``bamm data``: build training data and inspect dataset folders.

    bamm data build bandai <folder with dataset-1/2.tar.xz> --out DIR [--workers 2] [--limit N]
    bamm data build bvh <folder of .bvh> --captions captions.csv --out DIR [--workers 2]
    bamm data info <dataset folder>
"""

from __future__ import annotations

import argparse
import os
import sys

from .build import BuildError, BuildSettings, format_report
from .humanml3d import DatasetError
from .layout import FolderInUse


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so ``main`` can return the exit code."""

    def error(self, message: str):
        raise _UsageError(f"{self.prog}: error: {message}\n\n{self.format_usage()}")


class _UsageError(Exception):
    pass


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_build_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output dataset folder (created; re-running reuses finished clips)")
    parser.add_argument("--workers", type=_positive_int, default=min(2, os.cpu_count() or 1),
                        help="conversion processes (default: 2, or 1 on a single core)")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser(prog: str = "bamm data") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="Build training data or inspect a dataset folder.")
    commands = parser.add_subparsers(dest="command", metavar="{build,info}", parser_class=_Parser)
    build = commands.add_parser("build", help="build a HumanML3D-style dataset folder")
    sources = build.add_subparsers(dest="source", metavar="{bandai,bvh}", parser_class=_Parser)

    bandai = sources.add_parser("bandai", help="the Bandai-Namco Research Motion Dataset archives (CC BY-NC 4.0)")
    bandai.add_argument("root", help="folder holding dataset-1.tar.xz and dataset-2.tar.xz")
    _add_build_options(bandai)
    bandai.add_argument("--limit", type=_positive_int, default=None, help="read at most N clips from each archive")
    bandai.add_argument("--captions-per-clip", type=_positive_int, default=6,
                        help="training captions written per clip, drawn from the caption lexicon (default 6)")
    bandai.add_argument("--archives", default="dataset-1,dataset-2",
                        help="comma-separated archives to read (default: dataset-1,dataset-2)")

    bvh = sources.add_parser("bvh", help="a folder of BVH files captioned by a CSV (file,caption[,start,end])")
    bvh.add_argument("folder", help="folder of .bvh files (searched recursively)")
    bvh.add_argument("--captions", required=True, help="CSV with columns file,caption and optional start,end seconds")
    _add_build_options(bvh)

    info = commands.add_parser("info", help="clips, frames and captions per split of a dataset folder")
    info.add_argument("root", help="dataset folder (HumanML3D layout)")
    return parser


def _info(root: str) -> int:
    from .humanml3d import load_split, load_stats

    mean, _ = load_stats(root)
    print(f"{root}: feature size {mean.shape[0]}")
    for split in ("train", "val", "test"):
        clips = load_split(root, split)
        frames = sum(len(c.features) for c in clips)
        captions = sum(len(c.captions) for c in clips)
        print(f"  {split:<5} {len(clips):6d} clips {frames / 20.0 / 60.0:8.1f} min {captions:7d} captions")
    return 0


def main(command_name: str = "data", argv: list[str] | None = None) -> int:
    """Entry point used by ``bamm data ...``; returns the exit status."""
    parser = build_parser(f"bamm {command_name}")
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if args.command is None or (args.command == "build" and args.source is None):
        print(parser.format_help() if args.command is None else
              "usage: bamm data build {bandai,bvh} ... (see 'bamm data build bandai --help')", file=sys.stderr)
        return 2
    try:
        if args.command == "info":
            return _info(args.root)
        settings = BuildSettings(seed=args.seed)
        if args.source == "bandai":
            from .build_bandai import ARCHIVES, build_bandai

            archives = tuple(a.strip().removesuffix(".tar.xz") for a in args.archives.split(",") if a.strip())
            unknown = [a for a in archives if a not in ARCHIVES]
            if unknown or not archives:
                print(f"bamm data build bandai: error: --archives must list some of {', '.join(ARCHIVES)}, "
                      f"got {args.archives!r}", file=sys.stderr)
                return 2
            report = build_bandai(args.root, args.out, workers=args.workers, limit=args.limit, archives=archives,
                                  captions_per_clip=args.captions_per_clip, settings=settings, progress=not args.quiet)
        else:
            from .build_bvh import build_bvh_folder

            report = build_bvh_folder(args.folder, args.captions, args.out, workers=args.workers,
                                      settings=settings, progress=not args.quiet)
    except FolderInUse:
        raise  # bad input: one line from ``bamm`` (exit 2)
    except (BuildError, DatasetError, OSError) as exc:
        print(f"bamm {command_name}: error: {exc}", file=sys.stderr)
        return 1
    print(format_report(report))
    print(f"report written to {os.path.join(args.out, 'build_report.json')}")
    return 0
