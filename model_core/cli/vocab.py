"""``bamm vocab``: which words of a prompt the model knows, before anything is generated.

  bamm vocab "<prompt>" [--weights weights/] [--json]     the check (exit 0 either way)
  bamm vocab --list [--weights weights/] [--json]         the model's actions, styles and known concepts
  bamm vocab --write [--weights DIR] [--data DATASET]     write DIR/vocab.json (from a dataset's training
                                                          captions, e.g. HumanML3D's, or the Bandai-Namco ones)

The weights folder may also be a runtime folder (``bamm export-runtime``). ``vocab_line`` is the same check
for ``bamm generate``: one line on stderr when the prompt asks for something outside the vocabulary, or, with
``--strict``, that line as the error (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import vocabulary
from .main import ArgumentParser, CLIError

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def _folder(weights) -> Path:
    folder = Path(weights)
    if not ((folder / "bamm.json").is_file() or (folder / "runtime.json").is_file()):
        raise CLIError(f"no weights in {folder} (bamm.json or runtime.json missing): pass --weights <folder>")
    return folder


def _load(folder: Path) -> vocabulary.Vocabulary:
    try:
        return vocabulary.for_folder(folder)
    except (ValueError, OSError) as e:
        raise CLIError(f"{folder / vocabulary.FILE}: not a readable vocabulary ({' '.join(str(e).split())})") from None


def vocab_line(texts: list[str], weights, *, strict: bool = False) -> str:
    """The line naming what the prompt texts ask for outside the weights' vocabulary ("" when nothing is);
    with ``strict`` that line is the error (CLIError, exit 2)."""
    found = _load(_folder(weights)).check(" ; ".join(t for t in texts if t))
    if strict and not found.in_vocabulary:
        raise CLIError(f"{found.line()} (--strict)")
    return found.line()


def main(command_name: str, argv: list[str]) -> int:
    p = ArgumentParser(prog=f"bamm {command_name}",
                       description="check a prompt against the model's vocabulary (its training captions)")
    p.add_argument("prompt", nargs="?", help="the prompt to check")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="weights or runtime folder (default: weights/)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--list", action="store_true", help="print the model's vocabulary instead")
    p.add_argument("--write", action="store_true", help="write vocab.json into the --weights folder")
    p.add_argument("--data", help="with --write: a dataset folder whose training captions make the vocabulary "
                                  "(texts/, train.txt; e.g. HumanML3D)")
    args = p.parse_args(argv)
    folder = _folder(args.weights)
    if args.write:
        if args.data is not None and not (Path(args.data) / "texts").is_dir():
            raise CLIError(f"--data {args.data}: not a dataset folder (texts/ missing)")
        try:
            path = vocabulary.write_vocabulary(folder, folder, data=args.data)
        except ValueError as e:  # a dataset folder without training captions
            raise CLIError(str(e)) from None
        if path is None:
            raise CLIError(f"{folder} reads prompts with CLIP (trained on HumanML3D): give --data <HumanML3D folder>")
        print(f"wrote {path} ({_load(folder).source})")
        return 0
    vocab = _load(folder)
    if args.list:
        summary = vocab.summary()
        if args.json:
            print(json.dumps(summary, indent=1))
        elif vocab.open:
            print(vocab.note)
        else:
            print(f"vocabulary: {summary['source']}")
            print(f"actions: {', '.join(summary['actions'])}")
            print(f"styles: {', '.join(summary['styles'])}")
            for category, names in summary["known"].items():
                print(f"known {category}: {', '.join(names)}")
            for category, names in summary["not_known"].items():
                print(f"not known {category}: {', '.join(names)}")
        return 0
    if args.prompt is None or not args.prompt.strip():
        raise CLIError("give a prompt to check (or --list, --write)")
    found = vocab.check(args.prompt)
    if args.json:
        print(json.dumps(found.to_json()))
    elif found.note:
        print(found.note)
    elif found.in_vocabulary:
        known = ", ".join(f"'{w}'" for w in found.recognised)
        print("in this model's vocabulary" + (f": {known}" if known else " (no motion words)"))
    else:
        print(found.line())
    return 0
