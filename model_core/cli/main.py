"""The ``bamm`` command. Each sub-command lives in its own module and is imported only when used."""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from ..contract.limits import InputError


class CLIError(InputError):
    """A user-facing error of a sub-command: printed as one line, without a traceback (exit code 2)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the ``bamm`` convention: a usage error is one line (exit 2), not the usage text."""

    def error(self, message: str):
        raise CLIError(f"{message} (see '{self.prog} --help')")


# bad input: the user names a file or folder that is missing, unreadable or in the way
INPUT_ERRORS = (InputError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                PermissionError)


# name -> (module relative to this package, one-line help)
COMMANDS = {
    "data": ("..data.cli", "build training data (bandai, bvh folder) or inspect a dataset"),
    "train": ("..train.cli", "train the tokenizer (vq), the BAMM transformer (t2m) or the residual transformer (res)"),
    "eval": ("..eval.cli", "evaluate shipped or trained weights on a dataset split"),
    "generate": (".generate", "generate motion from a prompt"),
    "edit": (".generate", "regenerate a frame range of an existing motion (inpainting, prefix, suffix)"),
    "vocab": (".vocab", "check a prompt against the model's vocabulary (what its training captions hold)"),
    "export": (".blender", "export a motion (.npy joints) to BVH / FBX / GLB through Blender"),
    "build-extension": (".blender", "build the Blender extension zip"),
    "export-runtime": ("..runtime.export", "export weights to ONNX graphs for the bundled runtime (ONNX Runtime)"),
    "import-official": ("..official.importer", "import the published BAMM / MoMask checkpoints into a weights folder"),
}


def usage() -> str:
    lines = ["usage: bamm <command> [options]", "", "commands:"]
    lines += [f"  {name:<16} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'bamm <command> --help' for the options of a command.",
              "Exit codes: 0 done, 1 failed, 2 bad input (one line on stderr; --debug prints the traceback)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"bamm: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    debug = "--debug" in rest
    rest = [a for a in rest if a != "--debug"]
    try:
        module = importlib.import_module(COMMANDS[name][0], __package__)
        return int(module.main(name, rest) or 0)
    except SystemExit as e:  # argparse: --help (0) and usage errors (2, already printed)
        if isinstance(e.code, str):
            print(one_line(e.code), file=sys.stderr)
            return 2
        return int(e.code or 0)
    except KeyboardInterrupt:
        print(f"bamm {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            traceback.print_exc()
        if isinstance(e, INPUT_ERRORS):
            print(f"bamm {name}: {one_line(e)}", file=sys.stderr)
            return 2
        print(f"bamm {name}: failed: {type(e).__name__}: {one_line(e)}"
              + ("" if debug else " (run with --debug for the traceback)"), file=sys.stderr)
        return 1


def one_line(error) -> str:
    """An error's message on one line (an OSError's file name included), at most 500 characters."""
    if isinstance(error, OSError) and error.filename is not None and str(error.filename) not in str(error.strerror):
        text = f"{error.strerror or error}: {error.filename}"
    else:
        text = str(error)
    text = " ".join(text.split()) or type(error).__name__
    return text if len(text) <= 500 else text[:497] + "..."


if __name__ == "__main__":
    sys.exit(main())
