"""``bamm build-extension`` (the Blender extension zips) and ``bamm export`` (motion -> BVH / FBX / GLB).

  bamm build-extension [--platform linux-x64|windows-x64|macos-arm64 ... | --all] [--out dist/]
                       [--source .] [--weights weights/] [--budget-mb 150] [--validate-only]
  bamm export <joints.npy> --format fbx|bvh|glb --out <file> [--target rig.blend|rig.fbx --armature NAME]
              [--in-place] [--keep-root] [--loop] [--foot-lock]

One zip per platform, as Blender's own builder makes them with ``--split-platforms``
(``bamm-<version>-linux_x64.zip``; the manifest inside names its platform and its wheels). Each zip holds:

* the code: ``__init__.py``, ``blender_manifest.toml``, ``bamm_blender/`` and ``model_core/``;
* ``runtime/``: the ONNX Runtime export of ``weights/`` (``model_core.runtime.export.export_runtime``, run at
  build time and cached under ``.cache/runtime/<hash of the weights and the export code>``), its text encoder
  stored as float16 by default (``--text-weights``; float32 adds 45 MB and passes the budget). The torch
  safetensors are left out: the graphs carry the same numbers, and the zip would pass its size budget with
  both; the torch back end (a user's own Python) reads a weights folder set in the add-on preferences;
* ``templates/official/``: graph templates of the published HumanML3D models' architecture without weights
  (``model_core.runtime.templates``, cached under ``.cache/templates/<hash of the code>``), filled from the
  user's own checkpoints by the add-on's Import Published Model (``model_core.runtime.published``);
* ``wheels/``: ``onnxruntime`` and ``tokenizers`` for Python 3.11 (Blender 4.2-5.0) and 3.13 (Blender 5.1+),
  unmodified from PyPI (``pip download``, cached under ``.cache/wheels/<platform>/<cpXY>/``). Their declared
  dependencies (onnxruntime: flatbuffers, packaging, protobuf; tokenizers: huggingface-hub) are left out:
  inference (``InferenceSession``, ``Tokenizer.from_file``) imports none of them, which the stock-Blender
  tests check; numpy is Blender's own.

Each part's size is printed and a zip over the budget fails the build. The zips are validated and built
by Blender's own ``blender_ext.py``, found inside the installed ``bpy`` wheel without importing bpy (this
package never imports bpy); it runs under this Python in a subprocess.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import platform as platform_module
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: builds are not run side by side there
    fcntl = None

from .main import CLIError

REPO_ROOT = Path(__file__).resolve().parents[2]  # holds blender_manifest.toml in a source checkout
CACHE = REPO_ROOT / ".cache"
PLATFORMS = {  # Blender platform -> pip platform tags its wheels may carry (pip does not widen manylinux)
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_14_0_arm64", "macosx_11_0_arm64"),
}
PYTHON_VERSIONS = ("3.11", "3.13")  # Blender 4.2-5.0 and Blender 5.1+
BUNDLED_WHEELS = {"onnxruntime": "1.32.0", "tokenizers": "0.23.3"}
BUDGET_MB = 150.0
RUNTIME_DIR = "runtime"  # inside the extension (bamm_blender.core.RUNTIME_DIR reads it from there)
CODE = ("__init__.py", "bamm_blender", "model_core")
RUNTIME_SOURCES = ("model_core/runtime", "model_core/models", "model_core/vocabulary",  # the export writes vocab.json
                   "model_core/decoding/nets.py", "model_core/decoding/torch_nets.py",
                   "model_core/decoding/generate.py")
TEMPLATES_DIR = "templates/official"  # inside the extension: the published model's graph templates
TEMPLATE_SOURCES = ("model_core/runtime", "model_core/models", "model_core/official", "model_core/decoding/nets.py")
KEEP_RUNTIMES = 2  # cached exports kept besides the newest
TEXT_WEIGHTS = "float16"  # the text encoder's weights in the zip: float32 (91 MB) would pass the budget


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


def this_platform() -> str:
    """The Blender platform name of this machine, e.g. ``linux-x64``."""
    system = {"darwin": "macos"}.get(platform_module.system().lower(), platform_module.system().lower())
    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(platform_module.machine().lower(),
                                                                       platform_module.machine().lower())
    return f"{system}-{machine}"


# ------------------------------------------------------------------------------------------------ wheels
def fetch_wheels(platform: str, cache: Path) -> list[Path]:
    """The bundled wheels of ``platform`` for every Python in ``PYTHON_VERSIONS``: taken from ``cache``, else
    downloaded from PyPI into it. One path per distinct file (abi3 wheels serve both Pythons)."""
    if platform not in PLATFORMS:
        raise CLIError(f"unknown platform {platform!r}: choose from {', '.join(PLATFORMS)}")
    found: dict[str, Path] = {}
    for python in PYTHON_VERSIONS:
        folder = Path(cache) / platform / f"cp{python.replace('.', '')}"
        for project, version in BUNDLED_WHEELS.items():
            hits = sorted(folder.glob(f"{project}-{version}-*.whl"))
            if not hits:
                _download(f"{project}=={version}", platform, python, folder)
                hits = sorted(folder.glob(f"{project}-{version}-*.whl"))
            if not hits:
                raise CLIError(f"pip download wrote no {project} {version} wheel for {platform} / Python {python}")
            found.setdefault(hits[0].name, hits[0])
    return sorted(found.values())


def _download(requirement: str, platform: str, python: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tags = [arg for tag in PLATFORMS[platform] for arg in ("--platform", tag)]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--only-binary=:all:", "--no-deps", *tags, "--python-version", python, "--implementation", "cp",
               "--dest", str(folder), requirement]
    print(f"downloading {requirement} for {platform} / Python {python}")
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("ERROR")]
        raise CLIError(f"pip download {requirement} ({platform}, Python {python}) failed: "
                       f"{lines[-1] if lines else result.returncode}")


# ------------------------------------------------------------------------------------------------ runtime
EXPORT = """
import sys
from model_core.runtime.export import export_runtime
weights, out, text_weights = sys.argv[1:4]
export_runtime(weights, out, text_weights=text_weights)
"""
TEMPLATES = """
import sys
from model_core.runtime.templates import build_templates
build_templates(sys.argv[1])
"""


def _source_key(source: Path, sources: tuple[str, ...], files: list[Path], extra: str) -> str:
    """Hash of `files`, the code under `sources` and `extra`: a cache folder's name."""
    digest = hashlib.sha256(extra.encode())
    for rel in sources:
        path = Path(source) / rel
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def runtime_key(source: Path, weights: Path, text_weights: str) -> str:
    """Hash of the weights folder's files, the export code and the text weights' type: the runtime cache's
    folder name."""
    files = sorted(p for p in Path(weights).iterdir() if p.is_file() and p.suffix in (".json", ".safetensors"))
    return _source_key(source, RUNTIME_SOURCES, files, text_weights)


def export_runtime(source: Path, weights: Path, cache: Path, *, text_weights: str = TEXT_WEIGHTS) -> Path | None:
    """The runtime folder exported from ``weights`` by the ``source`` checkout's ``model_core.runtime``
    (``export_runtime`` with the text encoder's weights stored as ``text_weights``), cached by
    ``runtime_key``; None, with a notice, when the checkout has no runtime exporter."""
    if not (Path(source) / "model_core" / "runtime" / "export.py").is_file():
        print("notice: model_core/runtime/export.py is missing: the zip carries no runtime/ folder")
        return None
    if text_weights not in ("float16", "float32"):
        raise CLIError(f"text weights must be float16 or float32, got {text_weights!r}")
    if not (Path(weights) / "bamm.json").is_file():
        raise CLIError(f"no BAMM weights in {weights} (bamm.json missing)")
    folder = Path(cache) / "runtime" / runtime_key(source, weights, text_weights)
    return _cached(folder, source, EXPORT, [str(Path(weights).resolve()), "{out}", text_weights],
                   f"runtime export of {weights} (text encoder weights: {text_weights})")


def export_templates(source: Path, cache: Path) -> Path:
    """The graph templates of the published architecture (``model_core.runtime.templates``) made by the
    ``source`` checkout, cached by the hash of the code that makes them."""
    folder = Path(cache) / "templates" / _source_key(source, TEMPLATE_SOURCES, [], "templates")
    return _cached(folder, source, TEMPLATES, ["{out}"], "build of the published model's graph templates")


def _cached(folder: Path, source: Path, script: str, args: list[str], what: str) -> Path:
    """`folder`, made by running `script` with `args` ("{out}": the folder being written) under the `source`
    checkout when it is not complete yet; one build at a time, the newest KEEP_RUNTIMES + 1 kept."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / ".lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time: a second one waits, then reuses it
        if not (folder / ".complete").is_file():
            _build_into(folder, source, script, args, what)
    return folder


def _build_into(folder: Path, source: Path, script: str, args: list[str], what: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    print(f"{what}: a few minutes, cached in {folder}")
    partial = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(source)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    result = subprocess.run([sys.executable, "-c", script, *[a.replace("{out}", str(partial)) for a in args]],
                            cwd=source, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise CLIError(f"the {what} failed:\n{(result.stdout + result.stderr).strip()[-2000:]}")
    (partial / ".complete").write_text("")
    partial.rename(folder)
    older = sorted((p for p in folder.parent.iterdir() if p.is_dir() and p != folder and not p.name.startswith(".")),
                   key=lambda p: p.stat().st_mtime)
    for stale in older[:-KEEP_RUNTIMES]:  # builds of earlier weights or code
        shutil.rmtree(stale, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ staging
def manifest_text(source: Path, platforms: list[str], wheels: list[str]) -> str:
    """The source manifest with ``platforms`` and ``wheels`` (``./wheels/<file>``) set at the top level."""
    text = (Path(source) / "blender_manifest.toml").read_text()
    present = tomllib.loads(text)
    for key in ("platforms", "wheels"):
        if key in present:
            raise CLIError(f"blender_manifest.toml sets {key!r}: the builder writes it, remove it from the source")
    lines = text.splitlines()
    first_table = next((k for k, line in enumerate(lines) if line.lstrip().startswith("[")), len(lines))
    quoted = lambda items: "[" + ", ".join(f'"{item}"' for item in items) + "]"  # noqa: E731
    added = [f"platforms = {quoted(platforms)}"] + ([f"wheels = {quoted(wheels)}"] if wheels else []) + [""]
    return "\n".join(lines[:first_table] + added + lines[first_table:]) + "\n"


def stage(source: Path, into: Path, platforms: list[str], wheels: list[Path], runtime: Path | None,
          templates: Path | None = None) -> None:
    """Lay out the extension's source in ``into``: code, ``runtime/``, ``templates/``, ``wheels/`` and the
    manifest."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    for name in CODE:
        path = Path(source) / name
        if not path.exists():
            raise CLIError(f"{path} is missing: build from a source checkout of the repository")
        shutil.copytree(path, into / name, ignore=ignore) if path.is_dir() else shutil.copy2(path, into / name)
    if runtime is not None:
        shutil.copytree(runtime, into / RUNTIME_DIR, ignore=ignore)
    if templates is not None:
        shutil.copytree(templates, into / TEMPLATES_DIR, ignore=ignore)
    (into / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, into / "wheels" / wheel.name)
    names = [f"./wheels/{w.name}" for w in wheels]
    (into / "blender_manifest.toml").write_text(manifest_text(source, platforms, names))


def part_sizes(zip_path: Path) -> dict[str, tuple[int, int]]:
    """Bytes in the zip (compressed, uncompressed) per part: wheels, runtime, code."""
    sizes = {"wheels": [0, 0], "runtime": [0, 0], "code": [0, 0]}
    for info in zipfile.ZipFile(zip_path).infolist():
        top = info.filename.split("/")[0]
        part = "wheels" if top == "wheels" else "runtime" if top in (RUNTIME_DIR, TEMPLATES_DIR.split("/")[0]) else "code"
        sizes[part][0] += info.compress_size
        sizes[part][1] += info.file_size
    return {k: (v[0], v[1]) for k, v in sizes.items()}


def build_extension(source: Path = REPO_ROOT, out: Path = REPO_ROOT / "dist", *, platforms=None,
                    weights: Path | None = None, wheel_cache: Path | None = None, runtime: Path | None = None,
                    text_weights: str = TEXT_WEIGHTS, budget_mb: float = BUDGET_MB) -> list[Path]:
    """Validate and build one zip per platform (default: this machine's) into ``out``; returns their paths.

    ``runtime``: an exported runtime folder to bundle (default: exported from ``weights``, default
    ``<source>/weights``, with the text encoder's weights stored as ``text_weights``). ``wheel_cache``: where
    wheels are kept (default ``.cache/wheels``)."""
    source, out = Path(source).resolve(), Path(out).resolve()
    platforms = list(platforms or [this_platform()])
    for name in platforms:
        if name not in PLATFORMS:
            raise CLIError(f"unknown platform {name!r}: choose from {', '.join(PLATFORMS)}")
    if not (source / "blender_manifest.toml").is_file():
        raise CLIError(f"{source} has no blender_manifest.toml (build from a source checkout of the repository)")
    validate(source)
    wheels = sorted({w for name in platforms for w in fetch_wheels(name, wheel_cache or CACHE / "wheels")})
    if runtime is None:
        runtime = export_runtime(source, Path(weights or source / "weights"), CACHE, text_weights=text_weights)
    makes_templates = all((source / "model_core/runtime" / f).is_file() for f in ("templates.py", "export.py"))
    templates = export_templates(source, CACHE) if makes_templates else None
    out.mkdir(parents=True, exist_ok=True)
    made = []
    with tempfile.TemporaryDirectory(prefix="bamm-extension-") as tmp:
        staged = Path(tmp) / "bamm"
        staged.mkdir()
        stage(source, staged, platforms, wheels, runtime, templates)
        validate(staged)
        result = run_blender_ext("build", "--source-dir", str(staged), "--output-dir", str(out), "--split-platforms")
        if result.returncode != 0:
            raise CLIError(f"blender_ext.py build failed:\n{(result.stdout + result.stderr).strip()}")
        made = [out / line.split(":", 1)[1].strip() for line in result.stdout.splitlines()
                if line.startswith("building:")]
    if sorted(p.name for p in made) != sorted(p.name for p in made if p.is_file()) or len(made) != len(platforms):
        raise CLIError(f"blender_ext.py build reported success but wrote {made}, expected one zip per platform")
    over = []
    for path in made:
        sizes = part_sizes(path)
        total = path.stat().st_size / 1e6
        parts = ", ".join(f"{k} {c / 1e6:.1f} MB ({u / 1e6:.1f} MB unpacked)" for k, (c, u) in sizes.items())
        print(f"{path.name}: {total:.1f} MB = {parts}")
        if total > budget_mb:
            over.append(f"{path.name} is {total:.1f} MB")
            path.unlink()
    if over:
        raise CLIError(f"over the {budget_mb:g} MB budget: {'; '.join(over)} (removed)")
    return made


def _build_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bamm build-extension", description="Build the Blender extension zips.")
    parser.add_argument("--platform", action="append", choices=list(PLATFORMS),
                        help=f"platform to build (repeatable; default: this machine's, {this_platform()})")
    parser.add_argument("--all", action="store_true", help="build every platform: " + ", ".join(PLATFORMS))
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--source", type=Path, default=REPO_ROOT, help="extension source folder (default: repo)")
    parser.add_argument("--weights", type=Path, help="weights to export the runtime from (default: <source>/weights)")
    parser.add_argument("--text-weights", choices=("float16", "float32"), default=TEXT_WEIGHTS,
                        help=f"storage of the text encoder's weights in the runtime (default {TEXT_WEIGHTS})")
    parser.add_argument("--budget-mb", type=float, default=BUDGET_MB,
                        help=f"size limit per zip, MB (default {BUDGET_MB:g})")
    parser.add_argument("--validate-only", action="store_true", help="only check blender_manifest.toml")
    args = parser.parse_args(argv)
    if args.validate_only:
        validate(args.source)
        print(f"{args.source / 'blender_manifest.toml'}: valid")
        return 0
    if args.all and args.platform:
        raise CLIError("give --all or --platform, not both")
    if args.budget_mb <= 0:
        raise CLIError(f"--budget-mb must be positive, got {args.budget_mb}")
    paths = build_extension(args.source, args.out, platforms=list(PLATFORMS) if args.all else args.platform,
                            weights=args.weights, text_weights=args.text_weights, budget_mb=args.budget_mb)
    for path in paths:
        print(f"built {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def run_exporter(argv: list[str], *, capture: bool = False) -> subprocess.CompletedProcess:
    """Run the Blender-side exporter (``python -m bamm_blender``: bake, optional retarget onto a
    character, FBX / BVH / GLB) in its own process, since this package never imports bpy."""
    return subprocess.run([sys.executable, "-m", "bamm_blender", *argv], capture_output=capture, text=True)


EXPORT_SUFFIXES = {"fbx": ".fbx", "bvh": ".bvh", "glb": ".glb"}


def _export_main(argv: list[str]) -> int:
    """``bamm export``: the exporter writes a temporary file next to ``--out``, renamed into place; an existing
    output is kept (a new numbered name is used and reported) unless ``--overwrite`` is given."""
    from ..serving import outputs

    if any(a in ("-h", "--help") for a in argv):
        return run_exporter(argv).returncode
    p = argparse.ArgumentParser(prog="bamm export", add_help=False)
    p.add_argument("--out")
    p.add_argument("--format")
    p.add_argument("--overwrite", action="store_true")
    known, rest = p.parse_known_args(argv)
    passed = [a for a in argv if a != "--overwrite"]
    if not known.out:
        return run_exporter(passed).returncode  # the exporter says what is missing
    out = Path(known.out)
    suffix = out.suffix.lower() if out.suffix else EXPORT_SUFFIXES.get(str(known.format).lower(), "")
    final = out if out.suffix else out.with_name(out.name + suffix)
    if suffix not in EXPORT_SUFFIXES.values() or not final.parent.is_dir() or final.is_dir():
        return run_exporter(passed).returncode  # the exporter reports the format or folder
    stem = outputs.claim(final.parent, final.stem, [suffix], overwrite=known.overwrite)
    target = final.with_name(stem + suffix)
    tmp = outputs.temporary(target)
    args = rest + ["--out", str(tmp)] + (["--format", known.format] if known.format else [])
    try:
        proc = subprocess.run([sys.executable, "-m", "bamm_blender", *args], stdout=subprocess.PIPE, text=True)
        if proc.returncode == 0 and tmp.is_file():
            os.replace(tmp, target)
            note = "" if target == final else f" ({final.name} exists: --overwrite replaces it)"
            print(f"{target}{note}")
            return 0
        outputs.release(final.parent, stem, [suffix])
        return proc.returncode or 1
    finally:
        tmp.unlink(missing_ok=True)


def main(command_name: str, argv: list[str]) -> int:
    commands = {"build-extension": _build_main, "export": _export_main}
    if command_name not in commands:
        print(f"bamm: {command_name!r} is not handled by cli.blender", file=sys.stderr)
        return 2
    try:
        return commands[command_name](list(argv))
    except CLIError as e:
        print(f"bamm {command_name}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build-extension", sys.argv[2:]))
