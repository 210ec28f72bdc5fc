"""Stock Blender as an animator has it, for tests and benchmarks: a virtual environment holding nothing but the
``bpy`` wheel (Blender's own Python carries numpy, requests, zstandard and cython, exactly what ``bpy``
depends on), the Linux extension zip, and ``stock_scenario.py`` run in that environment.

    python tests/support/stock_blender.py create 5.0.1 5.2.3    # make the environments (CI, make test)

Environments live in ``.cache/bpy-venvs/<bpy version>`` (ignored by git), made on first use (about a minute
each, from PyPI) and reused after. bpy 4.2-5.0 run Python 3.11, bpy 5.1+ Python 3.13; the interpreter is
``$BAMM_PYTHON311`` / ``$BAMM_PYTHON313``, else ``python3.X`` on PATH, else a pyenv installation.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / ".cache" / "bpy-venvs"
SCENARIO = Path(__file__).with_name("stock_scenario.py")
DEFAULT_VERSIONS = ("5.0.1", "5.2.3")  # Blender 5.0 (Python 3.11) and 5.2 LTS (Python 3.13)
MINIMUM_VERSION = "4.2.23"  # the manifest's blender_version_min is 4.2.0


class StockUnavailable(RuntimeError):
    """No interpreter for the Python this bpy version needs (tests skip with this message)."""


def python_minor(bpy_version: str) -> str:
    """The Python (``"3.11"`` / ``"3.13"``) a bpy release is built for."""
    try:
        major, minor = (int(x) for x in bpy_version.split(".")[:2])
    except ValueError:
        raise ValueError(f"bpy version must look like 5.0.1, got {bpy_version!r}") from None
    if (major, minor) < (4, 2):
        raise ValueError(f"bpy {bpy_version} predates extensions (Blender 4.2)")
    return "3.11" if (major, minor) <= (5, 0) else "3.13"


def _reports(python: str, minor: str) -> bool:
    try:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == minor


def find_python(minor: str) -> str | None:
    """A Python ``minor`` interpreter (not a virtual environment's), or None."""
    candidates = [os.environ.get(f"BAMM_PYTHON{minor.replace('.', '')}")]
    if "%d.%d" % sys.version_info[:2] == minor:
        candidates.append(getattr(sys, "_base_executable", sys.executable))
    candidates.append(shutil.which(f"python{minor}"))
    if shutil.which("pyenv"):
        listed = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True).stdout.split()
        for version in sorted((v for v in listed if v.startswith(minor + ".")), reverse=True):
            prefix = subprocess.run(["pyenv", "prefix", version], capture_output=True, text=True).stdout.strip()
            candidates.append(str(Path(prefix) / "bin" / "python3") if prefix else None)
    return next((c for c in candidates if c and _reports(c, minor)), None)


def stock_python(bpy_version: str) -> Path:
    """The interpreter of the bpy-only environment for ``bpy_version``, made first when missing."""
    minor = python_minor(bpy_version)
    folder = VENVS / bpy_version
    python = folder / "bin" / "python"
    VENVS.mkdir(parents=True, exist_ok=True)
    with open(VENVS / f"{bpy_version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one maker at a time (make and pytest may race)
        if (folder / ".complete").is_file():
            return python
        base = find_python(minor)
        if base is None:
            raise StockUnavailable(f"bpy {bpy_version} needs Python {minor}: none found (set BAMM_PYTHON"
                                   f"{minor.replace('.', '')} or install python{minor})")
        shutil.rmtree(folder, ignore_errors=True)
        print(f"making {folder} (Python {minor} + bpy {bpy_version})", file=sys.stderr)
        for command in ([base, "-m", "venv", str(folder)],
                        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                         f"bpy=={bpy_version}"]):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command[:4])} failed: {(done.stdout + done.stderr).strip()[-1500:]}")
        (folder / ".complete").write_text(bpy_version)
    return python


def extra_packages(python: Path) -> list[str]:
    """Distributions in the environment beyond what stock Blender's Python carries."""
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True).stdout
    stock = {"bpy", "numpy", "requests", "zstandard", "cython", "certifi", "charset-normalizer", "idna", "urllib3",
             "pip", "setuptools"}
    return sorted(d["name"] for d in json.loads(listed) if d["name"].lower() not in stock)


def build_linux_zip(out: Path) -> Path:
    """The Linux extension zip, built as ``bamm build-extension --platform linux-x64`` builds it."""
    from model_core.cli import blender as cli_blender

    (path,) = cli_blender.build_extension(out=out, platforms=["linux-x64"])
    return path


def write_probe_graph(path: Path) -> Path:
    """A one-node ONNX graph (``y = x @ W``, x (B, 3) float32, W = [[1, 2], [3, 4], [5, 6]]) for the wheel probe."""
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], [1, 2, 3, 4, 5, 6])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def run_scenario(python: Path, zip_path: Path, workdir: Path, *, prefs: dict | None = None, seconds: float = 2.0,
                 warm_presses: int = 0, warm_seconds: float = 9.8, steps=None, timeout: float = 600) -> dict:
    """Run ``stock_scenario.py`` with ``python`` in a fresh user folder under ``workdir``; its JSON report, plus
    ``returncode`` and the output's tail."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"zip": str(zip_path), "fbx": str(workdir / "character.fbx"),
              "rigs_parent": str(ROOT / "tests"), "prefs": prefs or {}, "seconds": seconds,
              "warm_presses": warm_presses, "warm_seconds": warm_seconds,
              "probe_graph": str(write_probe_graph(workdir / "probe.onnx"))}
    if steps is not None:
        config["steps"] = list(steps)
    return run_script(python, SCENARIO, config, workdir, timeout=timeout)


def run_script(python: Path, script: Path, config: dict, workdir: Path, *, timeout: float = 600) -> dict:
    """Run a scenario ``script`` with ``python`` on ``config`` (its "report" key set here) in a fresh user folder
    ``workdir/user``; its JSON report, plus ``returncode``, the output's tail and ``user``."""
    workdir = Path(workdir)
    user = workdir / "user"
    shutil.rmtree(user, ignore_errors=True)
    config = {**config, "report": str(workdir / "report.json")}
    (workdir / "config.json").write_text(json.dumps(config))
    (workdir / "report.json").unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(BLENDER_USER_RESOURCES=str(user), PYTHONNOUSERSITE="1")
    done = subprocess.run([str(python), str(script), str(workdir / "config.json")], env=env, cwd=workdir,
                          capture_output=True, text=True, timeout=timeout)
    report = json.loads((workdir / "report.json").read_text()) if (workdir / "report.json").is_file() else {}
    report.update(returncode=done.returncode, output=(done.stdout + done.stderr)[-4000:], user=str(user))
    return report


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "create":
        print("usage: stock_blender.py create <bpy version> ...", file=sys.stderr)
        return 2
    for version in argv[1:]:
        try:
            print(stock_python(version))
        except StockUnavailable as e:
            print(f"skipped: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
