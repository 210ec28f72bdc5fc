"""``bamm build-extension`` (the Blender extension zip) and ``bamm export`` (motion -> BVH / FBX / GLB).

  bamm build-extension [--out dist/] [--source .] [--validate-only]
  bamm export <joints.npy> --format fbx|bvh|glb --out <file> [--target rig.blend|rig.fbx --armature NAME]
              [--in-place] [--keep-root] [--loop] [--foot-lock]

The zip is built by Blender's own ``blender_ext.py build`` (validated first with ``blender_ext.py
validate``), found inside the installed ``bpy`` wheel without importing bpy: this package never imports
bpy. The script runs under this Python in a subprocess.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

from .cli import CLIError

REPO_ROOT = Path(__file__).resolve().parents[1]  # holds blender_manifest.toml in a source checkout


def find_blender_ext() -> Path:
    """Path of ``blender_ext.py`` inside the installed bpy package (``<bpy>/<version>/scripts/addons_core/
    bl_pkg/cli/blender_ext.py``)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise CLIError("the bpy package is not installed: pip install bpy (it carries Blender's extension builder)")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    raise CLIError(f"blender_ext.py not found inside the bpy package at {list(spec.submodule_search_locations)}")


def run_blender_ext(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(find_blender_ext()), *args], capture_output=True, text=True)


def validate(source: Path) -> None:
    result = run_blender_ext("validate", str(source))
    if result.returncode != 0:
        raise CLIError(f"blender_manifest.toml in {source} is not valid:\n{(result.stdout + result.stderr).strip()}")


def build_extension(source: Path = REPO_ROOT, out: Path = REPO_ROOT / "dist") -> Path:
    """Validate and build the extension zip from ``source`` into ``out``; returns the zip's path."""
    source, out = Path(source).resolve(), Path(out).resolve()
    if not (source / "blender_manifest.toml").is_file():
        raise CLIError(f"{source} has no blender_manifest.toml (build from a source checkout of the repository)")
    validate(source)
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.glob("*.zip"))
    result = run_blender_ext("build", "--source-dir", str(source), "--output-dir", str(out))
    if result.returncode != 0:
        raise CLIError(f"blender_ext.py build failed:\n{(result.stdout + result.stderr).strip()}")
    made = [line.split('"')[1] for line in result.stdout.splitlines() if line.startswith("created:")]
    if made:
        return Path(made[-1])
    newest = sorted(set(out.glob("*.zip")) - before or out.glob("*.zip"), key=lambda p: p.stat().st_mtime)
    if not newest:
        raise CLIError(f"blender_ext.py build reported success but wrote no zip into {out}")
    return newest[-1]


def _build_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bamm build-extension", description="Build the Blender extension zip.")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--source", type=Path, default=REPO_ROOT, help="extension source folder (default: repo)")
    parser.add_argument("--validate-only", action="store_true", help="only check blender_manifest.toml")
    args = parser.parse_args(argv)
    if args.validate_only:
        validate(args.source)
        print(f"{args.source / 'blender_manifest.toml'}: valid")
        return 0
    path = build_extension(args.source, args.out)
    print(f"built {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def run_exporter(argv: list[str], *, capture: bool = False) -> subprocess.CompletedProcess:
    """Run the Blender-side exporter (``python -m bamm_blender``: bake, optional retarget onto a
    character, FBX / BVH / GLB) in its own process, since this package never imports bpy."""
    return subprocess.run([sys.executable, "-m", "bamm_blender", *argv], capture_output=capture, text=True)


def _export_main(argv: list[str]) -> int:
    return run_exporter(argv).returncode


def main(command_name: str, argv: list[str]) -> int:
    commands = {"build-extension": _build_main, "export": _export_main}
    if command_name not in commands:
        print(f"bamm: {command_name!r} is not handled by cli_blender", file=sys.stderr)
        return 2
    try:
        return commands[command_name](list(argv))
    except CLIError as e:
        print(f"bamm {command_name}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build-extension", sys.argv[2:]))
