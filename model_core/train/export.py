"""Assemble a weights folder (read by `BAMM.from_pretrained`) from the best models of three runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..generate import BAMM
from ..models.checkpoint import load_model, load_tensors
from ..models.residual import ResidualConfig, ResidualTransformer
from ..models.text import load_text_encoder
from ..models.transformer import BAMMConfig, BAMMTransformer
from ..models.vq import RVQVAE, RVQVAEConfig
from .common import TrainError
from .runs import RUN_FILE


def _run(folder, stage: str) -> tuple[Path, dict]:
    folder = Path(folder)
    run_file = folder / RUN_FILE
    if not run_file.is_file():
        raise TrainError(f"--{stage} {folder}: not a run folder ({RUN_FILE} missing)")
    settings = json.loads(run_file.read_text())
    if settings.get("stage") != stage:
        raise TrainError(f"--{stage} {folder}: is a {settings.get('stage')!r} run, not {stage!r}")
    if not (folder / f"{stage}.safetensors").is_file():
        raise TrainError(f"--{stage} {folder}: no trained model yet ({stage}.safetensors is written at the "
                         "first validation)")
    return folder, settings


def export_weights(*, vq_run, t2m_run, res_run, out, device: str = "cpu") -> Path:
    """Check that the runs belong together (same tokenizer, same text encoder) and write `out`."""
    vq_dir, _ = _run(vq_run, "vq")
    fingerprint = hashlib.sha256((vq_dir / "vq.safetensors").read_bytes()).hexdigest()[:16]
    encoders = set()
    for stage, folder in (("t2m", t2m_run), ("res", res_run)):
        _, settings = _run(folder, stage)
        if settings.get("vq_fingerprint") != fingerprint:
            raise TrainError(f"--{stage} {folder} was trained on the tokens of another tokenizer "
                             f"({settings.get('vq_run')}) than --vq {vq_dir}")
        encoders.add(settings["text_encoder"])
    if len(encoders) != 1:
        raise TrainError(f"the t2m and res runs use different text encoders: {sorted(encoders)}")
    encoder = encoders.pop()
    stats = load_tensors(vq_dir / "stats.safetensors")
    model = BAMM(text_encoder=load_text_encoder(encoder, device=device),
                 vq=load_model(RVQVAE, RVQVAEConfig, vq_dir, "vq"),
                 t2m=load_model(BAMMTransformer, BAMMConfig, t2m_run, "t2m"),
                 res=load_model(ResidualTransformer, ResidualConfig, res_run, "res"),
                 mean=stats["mean"], std=stats["std"], device=device)
    model.save_pretrained(out, text_encoder_spec=encoder)
    return Path(out)
