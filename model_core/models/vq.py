"""RVQ-VAE motion tokenizer (MoMask, reused by BAMM): 1-D conv encoder/decoder + residual vector quantisation.

A motion `(B, T, 263)` (normalised features) is encoded to `T // 4` latents, each quantised by `Q` codebooks in
turn (every layer quantises what the previous ones left over), giving codes `(B, T // 4, Q)`. Codebooks are
learned by exponential moving averages (EMA) of the encoder outputs assigned to them, not by gradients; codes
unused for a while are reset to random encoder outputs. During training the last layers are dropped at random
(quantiser dropout) so that the first layers alone already decode to a plausible motion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..motion import features
from ..motion.contact_root import contact_root
from .layers import gumbel_noise, lengths_to_mask


@dataclass(kw_only=True)
class RVQVAEConfig:
    input_dim: int = 263  # HumanML3D feature size
    code_num: int = 512  # entries per codebook
    code_dim: int = 512  # latent / code vector size
    num_quantizers: int = 6  # Q residual layers
    width: int = 512  # conv channels
    decoder_width: int = 0  # conv channels of the decoder; 0 = width
    down_t: int = 2  # number of stride-2 downsamplings: 2 -> one token per 4 frames
    depth: int = 3  # residual blocks per resolution
    dilation_growth_rate: int = 3  # dilations 1, 3, 9 (applied in reverse order)
    dropout: float = 0.2  # inside each residual block
    ema_decay: float = 0.99  # codebook EMA momentum
    quantize_dropout_prob: float = 0.2  # chance per training batch of keeping only the first n ~ U{1..Q} layers
    code_sample_temp: float = 0.5  # training-time Gumbel sampling of codes from -distance / temp; 0 = nearest
    commit_weight: float = 0.02  # beta of the commitment loss
    pos_weight: float = 0.5  # joint-position loss weight (positions in units of the dataset's ric std)
    vel_weight: float = 0.0  # joint-velocity loss weight (first differences of the joints, same units)
    acc_weight: float = 0.0  # joint-acceleration loss weight (second differences: the jitter an animator sees)
    skate_weight: float = 0.0  # foot-skate loss weight: horizontal foot speed where the input's feet touch down
    ground_weight: float = 0.0  # grounded-toe loss weight: toe velocity error where the input's toe is on the floor
    contact_root: bool = False  # decoded features get `motion.contact_root` (in the loss and wherever they are used)

    OPTIONAL_KEYS: ClassVar[tuple[str, ...]] = ("vel_weight", "acc_weight", "skate_weight", "ground_weight",
                                                 "decoder_width", "contact_root")  # newer than some files

    def __post_init__(self):
        for name in ("input_dim", "code_num", "code_dim", "num_quantizers", "width", "down_t", "depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"RVQVAEConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("vel_weight", "acc_weight", "skate_weight", "ground_weight", "commit_weight", "pos_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"RVQVAEConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("dropout", "ema_decay", "quantize_dropout_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"RVQVAEConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if not isinstance(self.contact_root, bool):
            raise ValueError(f"RVQVAEConfig.contact_root must be true or false, got {self.contact_root!r}")
        if self.code_sample_temp < 0:
            raise ValueError(f"RVQVAEConfig.code_sample_temp must be >= 0, got {self.code_sample_temp}")
        if self.decoder_width < 0:
            raise ValueError(f"RVQVAEConfig.decoder_width must be >= 0 (0: width), got {self.decoder_width}")

    @property
    def frames_per_token(self) -> int:
        return 2**self.down_t


GROUND_MARGIN_M = 0.05  # toe height above the lowest that counts as grounded (as eval.dynamics.GROUND_MARGIN)

VQ_PRESETS = {
    # MoMask / BAMM HumanML3D tokenizer (rvq_nq6_dc512_nc512, quantize dropout 0.2).
    "paper": RVQVAEConfig(),
    # Trainable on 2 CPU cores: same depth and quantiser setup, a quarter of the channels; velocity,
    # acceleration and foot-skate terms keep reconstructions smooth and grounded (a quarter-width decoder
    # otherwise jitters at twice the real clips' acceleration).
    "small": RVQVAEConfig(code_num=512, code_dim=128, width=128, vel_weight=0.5, acc_weight=2.0,
                          skate_weight=8.0, pos_weight=1.0),
    # Unit tests only.
    "tiny": RVQVAEConfig(code_num=32, code_dim=16, num_quantizers=3, width=16, depth=2, dropout=0.0),
}


class ResBlock(nn.Module):
    """ReLU -> dilated conv(3) -> ReLU -> conv(1) -> dropout, plus the input."""

    def __init__(self, width: int, dilation: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(width, width, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return x + self.dropout(self.conv2(F.relu(self.conv1(F.relu(x)))))


def res_stack(c: RVQVAEConfig, width: int) -> nn.Sequential:
    dilations = [c.dilation_growth_rate**i for i in range(c.depth)][::-1]
    return nn.Sequential(*[ResBlock(width, d, c.dropout) for d in dilations])


def encoder(c: RVQVAEConfig) -> nn.Sequential:
    """(B, input_dim, T) -> (B, code_dim, T / 2^down_t)."""
    down = [nn.Sequential(nn.Conv1d(c.width, c.width, 4, stride=2, padding=1), res_stack(c, c.width))
            for _ in range(c.down_t)]
    return nn.Sequential(nn.Conv1d(c.input_dim, c.width, 3, padding=1), nn.ReLU(), *down,
                         nn.Conv1d(c.width, c.code_dim, 3, padding=1))


def decoder(c: RVQVAEConfig) -> nn.Sequential:
    """(B, code_dim, N) -> (B, input_dim, N * 2^down_t)."""
    w = c.decoder_width or c.width
    up = [nn.Sequential(res_stack(c, w), nn.Upsample(scale_factor=2, mode="nearest"),
                        nn.Conv1d(w, w, 3, padding=1)) for _ in range(c.down_t)]
    return nn.Sequential(nn.Conv1d(c.code_dim, w, 3, padding=1), nn.ReLU(), *up,
                         nn.Conv1d(w, w, 3, padding=1), nn.ReLU(),
                         nn.Conv1d(w, c.input_dim, 3, padding=1))


class EMACodebook(nn.Module):
    """One codebook, updated by EMA of assigned vectors; dead codes are reset to random inputs."""

    def __init__(self, code_num: int, code_dim: int, decay: float):
        super().__init__()
        self.decay = decay
        self.register_buffer("embed", torch.zeros(code_num, code_dim))
        self.register_buffer("code_sum", torch.zeros(code_num, code_dim))  # EMA of summed assigned vectors
        self.register_buffer("code_count", torch.zeros(code_num))  # EMA of assignment counts
        self.register_buffer("initialised", torch.tensor(False))

    def distances(self, r: torch.Tensor) -> torch.Tensor:
        """(M, D) -> (M, code_num) squared Euclidean distances."""
        return r.pow(2).sum(-1, keepdim=True) - 2 * r @ self.embed.t() + self.embed.pow(2).sum(-1)[None]

    def nearest(self, r: torch.Tensor, temp: float = 0.0) -> torch.Tensor:
        logits = -self.distances(r)
        if temp > 0:  # sample close codes now and then (training only), as MoMask does
            logits = logits / temp + gumbel_noise(logits.shape, device=logits.device)
        return logits.argmax(-1)

    def random_rows(self, r: torch.Tensor) -> torch.Tensor:
        """code_num rows drawn from r (with small noise when r has fewer rows than codes)."""
        n = self.embed.shape[0]
        if r.shape[0] >= n:
            return r[torch.randperm(r.shape[0], device=r.device)[:n]]
        rows = r[torch.randint(r.shape[0], (n,), device=r.device)]
        return rows + torch.randn_like(rows) * (0.01 / r.shape[1] ** 0.5)

    @torch.no_grad()
    def update(self, r: torch.Tensor, idx: torch.Tensor) -> None:
        """EMA step from vectors r (M, D) assigned to codes idx (M,); codes with EMA count < 1 are reset."""
        onehot = F.one_hot(idx, self.embed.shape[0]).type_as(r)  # (M, code_num)
        self.code_sum.mul_(self.decay).add_(onehot.t() @ r, alpha=1 - self.decay)
        self.code_count.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        dead = self.code_count < 1.0
        fresh = self.random_rows(r)
        self.code_sum[dead] = fresh[dead]
        self.code_count[dead] = 1.0
        self.embed.copy_(self.code_sum / self.code_count[:, None])

    @torch.no_grad()
    def initialise(self, r: torch.Tensor) -> None:
        """Data-dependent start: codes are random vectors of the first training batch."""
        self.embed.copy_(self.random_rows(r))
        self.code_sum.copy_(self.embed)
        self.code_count.fill_(1.0)
        self.initialised.fill_(True)


def perplexity(idx: torch.Tensor, code_num: int) -> torch.Tensor:
    """exp(entropy) of the code usage: code_num when all codes are used equally, 1 when one code is used."""
    p = torch.bincount(idx, minlength=code_num).float() / max(idx.numel(), 1)
    return torch.exp(-(p * torch.log(p + 1e-10)).sum())


class ResidualVQ(nn.Module):
    """Q EMA codebooks applied to successive residuals. Latents are token-major: (B, N, code_dim)."""

    def __init__(self, c: RVQVAEConfig):
        super().__init__()
        self.config = c
        self.layers = nn.ModuleList(EMACodebook(c.code_num, c.code_dim, c.ema_decay) for _ in range(c.num_quantizers))

    def forward(self, z: torch.Tensor, *, mask: torch.Tensor | None = None):
        """Training/eval pass. mask (B, N) marks valid tokens (codebook statistics and losses ignore the rest).

        Returns (z_q with straight-through gradient, codes (B, N, Q) with -1 in dropped layers,
        commitment loss, mean perplexity of the active layers).
        """
        c = self.config
        mask = torch.ones(z.shape[:2], dtype=torch.bool, device=z.device) if mask is None else mask
        active = c.num_quantizers
        if self.training and torch.rand(()) < c.quantize_dropout_prob:
            active = int(torch.randint(1, c.num_quantizers + 1, ()))
        codes = torch.full((*z.shape[:2], c.num_quantizers), -1, dtype=torch.long, device=z.device)
        z_q = torch.zeros_like(z)
        commit, ppl = [], []
        for i, layer in enumerate(self.layers[:active]):
            residual = z - z_q.detach()
            valid = residual[mask]  # (M, D)
            if self.training and not bool(layer.initialised):
                layer.initialise(valid.detach())
            idx = layer.nearest(residual.detach(), c.code_sample_temp if self.training else 0.0)
            q = layer.embed[idx]
            if self.training:
                layer.update(valid.detach(), idx[mask])
            commit.append(F.mse_loss(valid, q[mask]))
            ppl.append(perplexity(idx[mask], c.code_num))
            codes[..., i] = idx
            z_q = z_q + q
        z_q = z + (z_q - z).detach()
        return z_q, codes, torch.stack(commit).mean(), torch.stack(ppl).mean()

    @torch.no_grad()
    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest codes of all layers, no codebook update: (B, N, D) -> (B, N, Q) int64."""
        z_q = torch.zeros_like(z)
        codes = []
        for layer in self.layers:
            idx = layer.nearest(z - z_q)
            z_q = z_q + layer.embed[idx]
            codes.append(idx)
        return torch.stack(codes, -1)

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, N, q) codes of the first q layers -> (B, N, D) summed code vectors; code -1 adds a zero vector
        (a slot past the end of a motion, as the official decoder sees it)."""
        return sum(self.layers[i].embed[codes[..., i].clamp_min(0)] * (codes[..., i, None] >= 0)
                   for i in range(codes.shape[-1]))


class RVQVAE(nn.Module):
    def __init__(self, config: RVQVAEConfig):
        super().__init__()
        self.config = config
        self.encoder = encoder(config)
        self.decoder = decoder(config)
        self.quantizer = ResidualVQ(config)

    def _check_motion(self, x: torch.Tensor) -> None:
        c = self.config
        if x.ndim != 3 or x.shape[-1] != c.input_dim:
            raise ValueError(f"motion must have shape (B, T, {c.input_dim}), got {tuple(x.shape)}")
        if x.shape[1] == 0 or x.shape[1] % c.frames_per_token:
            raise ValueError(f"motion length T={x.shape[1]} must be a positive multiple of {c.frames_per_token}")

    @staticmethod
    def _check_lengths(x: torch.Tensor, lengths: torch.Tensor | None) -> None:
        if lengths is not None and (lengths.shape != x.shape[:1] or lengths.min() < 1 or lengths.max() > x.shape[1]):
            raise ValueError(f"lengths must have shape ({x.shape[0]},) with values in [1, {x.shape[1]}], "
                             f"got {lengths.tolist()}")

    def _latents(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.transpose(1, 2)).transpose(1, 2)  # (B, N, code_dim)

    def _decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z.transpose(1, 2)).transpose(1, 2)  # (B, T, input_dim)

    def codebook(self, layer: int) -> torch.Tensor:
        """(code_num, code_dim) code vectors of quantiser layer `layer` (0 = base layer)."""
        if not 0 <= layer < self.config.num_quantizers:
            raise ValueError(f"layer must be in [0, {self.config.num_quantizers}), got {layer}")
        return self.quantizer.layers[layer].embed

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, 263) normalised features, T a multiple of 4 -> codes (B, T // 4, Q) int64."""
        self._check_motion(x)
        return self.quantizer.quantize(self._latents(x))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, N, q), q <= Q (the first q layers) -> normalised features (B, 4N, 263). -1: no code."""
        c = self.config
        if codes.ndim != 3 or not 1 <= codes.shape[-1] <= c.num_quantizers:
            raise ValueError(f"codes must have shape (B, N, q) with 1 <= q <= {c.num_quantizers}, "
                             f"got {tuple(codes.shape)}")
        if codes.dtype != torch.long:
            raise ValueError(f"codes must be int64, got {codes.dtype}")
        if codes.numel() and (codes.min() < -1 or codes.max() >= c.code_num):
            raise ValueError(f"codes must lie in [0, {c.code_num}) (or -1: no code), got [{int(codes.min())}, "
                             f"{int(codes.max())}]")
        return self._decode_latents(self.quantizer.dequantize(codes))

    def forward(self, x: torch.Tensor, *, lengths: torch.Tensor | None = None):
        """x (B, T, 263) -> (reconstruction (B, T, 263), commitment loss, perplexity).

        `lengths` (B,) in frames keeps padded tokens out of the codebook statistics and the commitment loss.
        """
        self._check_motion(x)
        self._check_lengths(x, lengths)
        z = self._latents(x)
        mask = None
        if lengths is not None:
            f = self.config.frames_per_token
            mask = lengths_to_mask((lengths.to(z.device) + f - 1) // f, z.shape[1])
        z_q, _, commit, ppl = self.quantizer(z, mask=mask)
        return self._decode_latents(z_q), commit, ppl

    @staticmethod
    def _grounded_toe_error(joints, joints_hat, frame_mask, *, margin):
        """Mean error of the toes (l_foot, r_foot) of `joints_hat` against `joints` (B, T, 22, 3) over the steps
        where the toes of `joints` are within `margin` of the sequence's lowest toe height at both frames:
        horizontal velocity error plus height error, so that a planted toe stays planted and on the floor (a
        shuffling one may slide as it did)."""
        height = joints[:, :, [10, 11], 1]  # (B, T, 2)
        lowest = height.masked_fill(~frame_mask[..., None], float("inf")).amin(dim=(1, 2), keepdim=True)
        low = (height <= lowest + margin) & frame_mask[..., None]
        grounded = low[:, 1:] & low[:, :-1]  # (B, T-1, 2)
        toes, toes_hat = joints[:, :, [10, 11]], joints_hat[:, :, [10, 11]]
        speed = (toes_hat.diff(dim=1) - toes.diff(dim=1))[..., [0, 2]].norm(dim=-1)
        lift = (toes_hat[:, 1:, :, 1] - toes[:, 1:, :, 1]).abs()
        return ((speed + lift) * grounded).sum() / grounded.sum().clamp(min=1)

    def loss(self, x, *, mean, std, lengths=None, decoder_only: bool = False):
        """Training loss on normalised features x (B, T, 263); mean/std (263,) de-normalise for the joints.

        loss = smoothL1(recon, x) + pos_weight * smoothL1(J(recon), J(x)) + vel_weight * L1(dJ(recon), dJ(x))
               + acc_weight * L1(d2J(recon), d2J(x)) + skate_weight * skate + ground_weight * ground
               + commit_weight * commit,
        where J are the joints from `recover_from_ric` divided by the dataset's ric std s (positions on the
        feature scale, like MoMask's term on the ric slice; with `contact_root` the reconstruction's root first
        follows its planted toes, as wherever the tokenizer decodes), d and d2 the first and second differences over
        time (velocity: MoMask's tokenizer also has a velocity term; acceleration: frame-to-frame jitter) and
        skate the mean horizontal speed of the reconstructed ankles and toes on the frames where the input's
        foot-contact flags say that foot is down; ground the toes' horizontal velocity and height errors on the
        steps where the input's toe is within 5 cm of the sequence's lowest toe height at both frames (the steps
        the foot-skate figure of `eval.dynamics` measures). Frames beyond `lengths` (B,) are ignored.
        """
        c = self.config
        mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
        std = torch.as_tensor(std, dtype=x.dtype, device=x.device)
        if mean.shape != (c.input_dim,) or std.shape != (c.input_dim,):
            raise ValueError(f"mean and std must have shape ({c.input_dim},), "
                             f"got {tuple(mean.shape)} and {tuple(std.shape)}")
        if decoder_only:
            self._check_lengths(x, lengths)
            training = self.encoder.training
            self.encoder.eval()  # the tokens the transformers see: no dropout in the frozen encoder
            with torch.no_grad():
                codes = self.encode(x)
            self.encoder.train(training)
            recon, commit, ppl = self.decode(codes), x.new_zeros(()), x.new_zeros(())
        else:
            recon, commit, ppl = self(x, lengths=lengths)
        frame_mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        if lengths is not None:
            frame_mask = lengths_to_mask(lengths.to(x.device), x.shape[1])
        rec = F.smooth_l1_loss(recon[frame_mask], x[frame_mask])
        joints_num = (c.input_dim + 1) // 12  # 263 -> 22 (HumanML3D), 251 -> 21 (KIT)
        scale = std[features.std_groups(joints_num)["ric"]].mean()
        x_raw = features.denormalize(x, mean, std)
        recon_raw = features.denormalize(recon, mean, std)
        joints_hat = features.recover_from_ric(contact_root(recon_raw) if c.contact_root else recon_raw,
                                               joints_num) / scale
        joints = features.recover_from_ric(x_raw, joints_num) / scale
        pos = F.smooth_l1_loss(joints_hat[frame_mask], joints[frame_mask])
        loss = rec + c.pos_weight * pos + c.commit_weight * commit
        logs = {"loss": 0.0, "rec": rec.item(), "pos": pos.item(), "commit": commit.item(),
                "perplexity": ppl.item()}
        if c.vel_weight or c.acc_weight or c.skate_weight or c.ground_weight:
            vel_hat, vel = joints_hat.diff(dim=1), joints.diff(dim=1)
            m1 = frame_mask[:, 1:] & frame_mask[:, :-1]  # both frames of a difference are real
            m2 = m1[:, 1:] & m1[:, :-1]
            vel_l = F.l1_loss(vel_hat[m1], vel[m1])
            acc_l = F.l1_loss(vel_hat.diff(dim=1)[m2], vel.diff(dim=1)[m2])
            if joints_num == 22:  # HumanML3D contacts: l_ankle, l_foot, r_ankle, r_foot
                feet = torch.tensor([7, 10, 8, 11], device=x.device)
                down = (x_raw[:, :-1, -4:] > 0.5) & m1[..., None]  # (B, T-1, 4)
                speed = vel_hat[:, :, feet][..., [0, 2]].norm(dim=-1)  # horizontal, (B, T-1, 4)
                skate = (speed * down).sum() / down.sum().clamp(min=1)
                ground = self._grounded_toe_error(joints, joints_hat, frame_mask, margin=GROUND_MARGIN_M / scale)
            else:
                skate = ground = vel_l.new_zeros(())
            loss = loss + c.vel_weight * vel_l + c.acc_weight * acc_l + c.skate_weight * skate + c.ground_weight * ground
            logs.update(vel=vel_l.item(), acc=acc_l.item(), skate=skate.item(), ground=ground.item())
        logs["loss"] = loss.item()
        return loss, logs
