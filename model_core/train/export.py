"""Assemble a weights folder (read by `BAMM.from_pretrained`) from the best models of three runs (or, with
``last``, the transformer runs' last checkpoints), with the vocabulary of the BAMM transformer run's training
captions (`vocab.json`, `vocabulary.write_vocabulary`)."""

from __future__ import annotations

import json
from pathlib import Path

from ..decoding.generate import BAMM
from ..models.checkpoint import load_model, load_tensors, load_weights_into
from ..models.residual import ResidualConfig, ResidualTransformer
from ..models.text import load_text_encoder
from ..models.transformer import BAMMConfig, BAMMTransformer
from ..models.vq import RVQVAE, RVQVAEConfig
from .checkpoints import latest_checkpoint
from .common import TrainError
from .runs import RUN_FILE, vq_fingerprint


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


def _transformer(cls, config_cls, folder, stage: str, last: bool):
    model = load_model(cls, config_cls, folder, stage)
    if last:
        checkpoint = latest_checkpoint(Path(folder))
        if checkpoint is None:
            raise TrainError(f"--{stage} {folder}: no checkpoint to take with --last")
        load_weights_into(model, checkpoint / "model.safetensors")
    return model


def export_weights(*, vq_run, t2m_run, res_run, out, device: str = "cpu", last: bool = False) -> Path:
    """Check that the runs belong together (same tokenizer, same text encoder) and write `out`.

    last: take the t2m and res runs' last checkpoints instead of their best-validation models."""
    vq_dir, _ = _run(vq_run, "vq")
    fingerprint = vq_fingerprint(vq_dir)
    encoders = set()
    data = {}
    for stage, folder in (("t2m", t2m_run), ("res", res_run)):
        _, settings = _run(folder, stage)
        data[stage] = settings.get("data")
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
                 t2m=_transformer(BAMMTransformer, BAMMConfig, t2m_run, "t2m", last),
                 res=_transformer(ResidualTransformer, ResidualConfig, res_run, "res", last),
                 mean=stats["mean"], std=stats["std"], device=device)
    model.save_pretrained(out, text_encoder_spec=encoder)
    from ..vocabulary import write_vocabulary

    write_vocabulary(out, out, data=data["t2m"])
    return Path(out)
