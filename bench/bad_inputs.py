"""What bad inputs cost before they are refused: peak memory and seconds, each case in its own process.

    python bench/bad_inputs.py [--tree DIR]

``--tree``: the source tree whose ``model_core`` is measured (default: this one), so two checkouts compare.
Cases: a CLIP TorchScript archive whose one storage declares 600 MiB of zeros (about 0.6 MB on disk), a
t2m config asking for ff_dim 10^6 (about 3 GB of weights for the shipped width), and ``bamm generate
--seconds 9.9`` (over the shipped weights' 9.8 s).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the archives of tests/test_clip_archives.py

from support.clip_archives import write_zip_bomb  # noqa: E402

MEASURE = """
import resource, sys, time
t = time.perf_counter()
try:
    exec(sys.argv[1])
    outcome = "accepted"
except BaseException as e:
    outcome = type(e).__name__ + ": " + " ".join(str(e).split())[:90]
print(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}\\t{time.perf_counter() - t:.2f}\\t{outcome}")
"""


def run(tree: Path, code: str, cwd: Path) -> str:
    env = {"PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", MEASURE, code], capture_output=True, text=True, env=env, cwd=cwd)
    return (done.stdout.strip().splitlines() or [f"-\t-\tcrashed: {done.stderr.strip()[-120:]}"])[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT)
    tree = parser.parse_args().tree.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_zip_bomb(tmp / "bomb.pt", mib=600)
        weights = tmp / "weights"
        shutil.copytree(ROOT / "weights", weights, ignore=shutil.ignore_patterns("evaluator", "*.md"))
        meta = json.loads((weights / "t2m.json").read_text())
        meta["config"]["ff_dim"] = 10**6
        (weights / "t2m.json").write_text(json.dumps(meta))
        cases = {
            f"CLIP archive, 600 MiB storage ({(tmp / 'bomb.pt').stat().st_size / 1e6:.1f} MB file)":
                f"from model_core.models.clip_text import read_clip_state_dict; read_clip_state_dict({str(tmp / 'bomb.pt')!r})",
            "t2m config with ff_dim 10^6":
                "from model_core.models.checkpoint import load_model; from model_core.models.transformer import "
                f"BAMMTransformer, BAMMConfig; load_model(BAMMTransformer, BAMMConfig, {str(weights)!r}, 't2m')",
            "bamm generate --seconds 9.9":
                f"from model_core.cli import main; sys.exit(main(['generate', 'walk', '--seconds', '9.9', '--weights', "
                f"{str(ROOT / 'weights')!r}, '--no-fbx', '--out', {str(tmp / 'out')!r}]))",
        }
        print(f"model_core from {tree}")
        print(f"{'case':<48} {'peak MiB':>9} {'seconds':>8}  outcome")
        for name, code in cases.items():
            rss, seconds, outcome = run(tree, code, tmp).split("\t", 2)
            print(f"{name:<48} {rss:>9} {seconds:>8}  {outcome}")


if __name__ == "__main__":
    main()
