"""Started by torchrun from tests/test_ddp.py: train a few steps on the gloo backend, save this rank's weights.

    python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_worker.py STAGE DATA OUT [VQ_RUN CACHE]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from model_core.train.common import teardown_distributed  # noqa: E402
from model_core.train.tokens import train_transformer  # noqa: E402
from model_core.train.vq import train_vq  # noqa: E402


def main() -> None:
    stage, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    torch.set_num_threads(1)
    common = dict(preset="tiny", steps=6, batch_size=8, progress=False)
    if stage == "vq":
        model = train_vq(data, out / "run", **common)
    else:
        model = train_transformer(stage, data, out / "run", vq_run=sys.argv[4], cache_dir=sys.argv[5], **common)
    rank = int(os.environ["RANK"])
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"rank{rank}.safetensors"), metadata={"bpy_imported": str("bpy" in sys.modules)})
    teardown_distributed()


if __name__ == "__main__":
    main()
