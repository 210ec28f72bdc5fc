"""How far the bones of the SMPL-22 BVH point from the joints they were written from. Prints figures, asserts
nothing.

  python bench/smpl_bvh.py [--weights weights] [--prompts "a person jumps" "a person does a cartwheel" ...]

For motions generated with the weights (and the HumanML3D clips of the shared data folder, when present):
the worst angle over frames between each BVH bone (parent joint -> joint, through forward kinematics of the
written and re-read file) and the same bone of the joints, for the file as written (the hips, spine1, neck and
collars carry their offset on each frame) and with those channels frozen at the OFFSET (fixed offsets).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the measure of tests/test_smpl_bvh.py

from model_core.motion.bvh import read_bvh, write_bvh  # noqa: E402
from model_core.motion.smpl_bvh import joints_to_bvh_clip  # noqa: E402
from support.bone_angles import bone_angles, freeze_spread_joints  # noqa: E402

HML = ROOT.parent / "shared" / "data" / "humanml3d-format" / "new_joints"
PROMPTS = ("a person walks forward and waves", "a person jumps", "a person does a cartwheel",
           "a person kicks with the right leg")


def report(label: str, joints: np.ndarray, folder: Path) -> None:
    path = folder / "clip.bvh"
    write_bvh(path, joints_to_bvh_clip(joints))
    written = bone_angles(read_bvh(path), joints)
    fixed = bone_angles(freeze_spread_joints(read_bvh(path)), joints)
    worst = max(fixed, key=fixed.get)
    print(f"  {label:44s} fixed offsets: {fixed[worst]:6.2f} deg ({worst:8s})   as written: "
          f"{max(written.values()):5.3f} deg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "weights"))
    parser.add_argument("--prompts", nargs="*", default=list(PROMPTS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("Worst bone direction error of the SMPL-22 BVH against its joints (max over frames and bones):")
    with tempfile.TemporaryDirectory() as tmp:
        if (Path(args.weights) / "bamm.json").is_file():
            from model_core.decoding.generate import BAMM

            model = BAMM.from_pretrained(args.weights)
            for prompt in args.prompts:
                (motion,) = model.generate(prompt, seed=args.seed)
                report(f"generated: {prompt}", motion.joints, Path(tmp))
        for clip in ("000000", "M010968"):
            if (HML / f"{clip}.npy").is_file():
                report(f"HumanML3D {clip}", np.load(HML / f"{clip}.npy"), Path(tmp))


if __name__ == "__main__":
    main()
