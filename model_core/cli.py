"""The ``bamm`` command. Each sub-command lives in its own module and is imported only when used."""

from __future__ import annotations

import importlib
import sys

class CLIError(Exception):
    """A user-facing error of a sub-command: printed as one line, without a traceback."""


# name -> (module relative to this package, one-line help)
COMMANDS = {
    "data": (".data.cli", "build training data (bandai, bvh folder) or inspect a dataset"),
    "train": (".train.cli", "train the tokenizer (vq), the BAMM transformer (t2m) or the residual transformer (res)"),
    "eval": (".eval.cli", "evaluate shipped or trained weights on a dataset split"),
    "generate": (".cli_generate", "generate motion from a prompt"),
    "edit": (".cli_generate", "regenerate a frame range of an existing motion (inpainting, prefix, suffix)"),
    "export": (".cli_blender", "export a motion (.npy joints) to BVH / FBX / GLB through Blender"),
    "build-extension": (".cli_blender", "build the Blender extension zip"),
    "export-runtime": (".runtime.export", "export weights to ONNX graphs for the bundled runtime (ONNX Runtime)"),
    "import-official": (".official.importer", "import the published BAMM / MoMask checkpoints into a weights folder"),
}


def usage() -> str:
    lines = ["usage: bamm <command> [options]", "", "commands:"]
    lines += [f"  {name:<16} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'bamm <command> --help' for the options of a command."]
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
    module = importlib.import_module(COMMANDS[name][0], __package__)
    return int(module.main(name, rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
