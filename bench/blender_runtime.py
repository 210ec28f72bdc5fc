"""Generate in stock Blender: install time of the Linux zip, first press of Generate to keys after enabling,
and warm presses to keys for a 9.8 s clip, with the bundled runtime (default preferences) side by side with the
torch worker (this environment's Python as Worker Python, the repository's weights/), and the published
HumanML3D architecture as Import Published Model writes it (``--sides imported,imported-exact``; random
checkpoints of the published sizes).

    python bench/blender_runtime.py [--bpy 5.0.1] [--runs 3] [--warm 5] [--seconds 9.8] [--sides runtime,torch]
                                    [--zip Z]

Each run is a fresh Blender process (a bpy-only environment, ``tests/support/stock_blender.py``) with a fresh
user folder: install, enable, one first press, then ``--warm`` presses (seeds 1..n). Prints medians over runs
(first press, install) and over all warm presses, in seconds, and the machine; warm generations are also
timed split into the model job (worker) and the writing of keys (in Blender). Targets: first press <= 2 s,
warm <= 0.25 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support import stock_blender  # noqa: E402


def machine() -> str:
    model = ""
    try:
        model = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    return f"{model or 'unknown CPU'}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def imported_model(precision: str) -> Path:
    """The runtime folder Import Published Model writes from random checkpoints of the published sizes."""
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT))
    from generate import official_runtime

    return official_runtime(1, precision).nets.folder


def measure(python: Path, zip_path: Path, work: Path, prefs: dict, args) -> dict:
    """Medians of ``args.runs`` scenarios: install, first press, warm presses (seconds)."""
    install, first, warm, job, keys = [], [], [], [], []
    for k in range(args.runs):
        report = stock_blender.run_scenario(python, zip_path, work / f"run{k}", prefs=prefs, seconds=args.seconds,
                                            warm_presses=args.warm, warm_seconds=args.seconds,
                                            steps=["install", "generate", "warm"], timeout=1200)
        steps = report.get("steps", {})
        for name in ("install", "generate", "warm"):
            if not steps.get(name, {}).get("ok"):
                raise SystemExit(f"{name} failed: {steps.get(name, {}).get('error') or steps.get(name)}\n"
                                 f"{report['output'][-1500:]}")
        install.append(steps["install"]["seconds"])
        first.append(steps["generate"]["press_seconds"])
        warm += steps["warm"]["press_seconds"]
        job += [a for a, _ in steps["warm"]["job_and_keys_seconds"]]
        keys += [b for _, b in steps["warm"]["job_and_keys_seconds"]]
    return {"install": statistics.median(install), "first": statistics.median(first),
            "warm": statistics.median(warm), "warm_min": min(warm), "job": statistics.median(job),
            "keys_s": statistics.median(keys), "blender": report["blender"],
            "keys": steps["warm"]["keys"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bpy", default=stock_blender.DEFAULT_VERSIONS[0], help="bpy version (stock Blender)")
    parser.add_argument("--runs", type=int, default=3, help="fresh Blender processes per back end")
    parser.add_argument("--warm", type=int, default=5, help="warm presses per process")
    parser.add_argument("--seconds", type=float, default=9.8, help="clip length, s (first and warm presses)")
    parser.add_argument("--sides", default="runtime,torch",
                        help="what to time, comma-separated: runtime (the shipped model), torch (the torch worker), "
                             "imported, imported-exact (the published architecture imported from random "
                             "checkpoints of its sizes, int8 / float32)")
    parser.add_argument("--zip", type=Path, help="a built Linux zip (default: build one)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warm < 1 or args.seconds <= 0:
        parser.error("--runs and --warm must be at least 1, --seconds positive")
    if not args.sides or not set(args.sides.split(",")) <= {"runtime", "torch", "imported", "imported-exact"}:
        parser.error(f"--sides takes runtime, torch, imported, imported-exact, got {args.sides!r}")
    python = stock_blender.stock_python(args.bpy)
    with tempfile.TemporaryDirectory(prefix="bamm-bench-") as tmp:
        work = Path(tmp)
        zip_path = args.zip or stock_blender.build_linux_zip(work / "dist")
        zip_mb = zip_path.stat().st_size / 1e6
        sides = {"runtime (default)": {}, "torch worker": {"backend": "WORKER", "python_path": sys.executable,
                                                           "weights_dir": str(ROOT / "weights")}}
        for side, precision in (("imported", "int8"), ("imported-exact", "float32")):
            if side in args.sides.split(","):
                sides[f"{side} (HumanML3D)"] = {"active_model": str(imported_model(precision))}
        results = {name: measure(python, zip_path, work / name.split()[0], prefs, args)
                   for name, prefs in sides.items() if name.split()[0] in args.sides.split(",")}
    print(f"machine: {machine()}")
    first = next(iter(results.values()))
    print(f"Blender {first['blender']} (bpy-only Python), zip {zip_path.name} {zip_mb:.1f} MB, "
          f"{args.seconds} s clip, {args.runs} runs x {args.warm} warm presses")
    print(f"{'back end':<20} {'install s':>10} {'first press s':>14} {'warm press s':>13} {'warm min s':>11} "
          f"{'of which job s':>15} {'keys s':>7}")
    for name, r in results.items():
        print(f"{name:<20} {r['install']:>10.2f} {r['first']:>14.2f} {r['warm']:>13.3f} {r['warm_min']:>11.3f} "
              f"{r['job']:>15.3f} {r['keys_s']:>7.3f}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores")
    print("targets: first press <= 2 s, warm press <= 0.25 s (medians; the imported HumanML3D model: <= 0.35 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
