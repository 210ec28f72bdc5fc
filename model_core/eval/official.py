"""HumanML3D's official text–motion matching evaluator (Guo et al., CVPR 2022), loaded from its released files.

Published FID / R-precision / MM-Dist / diversity / multimodality tables are measured with these
networks; ``bamm eval --official <folder>`` uses them instead of our own evaluator. Nothing is
downloaded: the user supplies the files, laid out as the released ``checkpoints/t2m`` folder plus the
``glove`` folder::

    <folder>/text_mot_match/model/finest.tar       the three networks (a torch file holding a dict of
                                                     state dicts: text_encoder, movement_encoder, motion_encoder)
    <folder>/Comp_v6_KLD01/meta/mean.npy, std.npy  the evaluator's own feature statistics (it normalises
                                                     motions with these, not with the dataset's Mean/Std)
    <folder>/glove/our_vab_data.npy                word vectors (V, 300)
    <folder>/glove/our_vab_words.npy               the V words, a string array; row i of the vectors is word i

The words come as a pickle (``our_vab_words.pkl``) in the release; this module never unpickles files, so
convert that list once into a plain string array (``np.save("our_vab_words.npy", np.array(words))``).

The networks:

- ``MovementConvEncoder``: the features normalised with the evaluator's statistics, minus the 4 foot-contact
  values, through two strided convolutions (×4 shorter) and a linear layer.
- ``MotionEncoderBiGRUCo``: a bidirectional GRU over the ``length // 4`` valid steps; the two final states go
  through an MLP to the 512-d embedding.
- ``TextEncoderBiGRUCo``: each ``word/POS`` token is a GloVe vector plus a linear map of its part-of-speech
  one-hot (15 categories, 5 of them motion-word lists); the sentence is cut to 20 tokens and wrapped in
  ``sos``/``eos``; the same BiGRU + MLP head gives the 512-d embedding.

Embeddings are compared with plain Euclidean distances (they are not normalised).
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..data.pos_tags import tokens_string

CHECKPOINT = "text_mot_match/model/finest.tar"
MEAN, STD = "Comp_v6_KLD01/meta/mean.npy", "Comp_v6_KLD01/meta/std.npy"
VECTORS, WORDS = "glove/our_vab_data.npy", "glove/our_vab_words.npy"
REQUIRED_FILES = (CHECKPOINT, MEAN, STD, VECTORS, WORDS)

UNIT = 4               # frames per motion-encoder step
MAX_TEXT_TOKENS = 20   # words kept per caption, before sos/eos
MAX_MOTION_FRAMES = 196  # the official loader zero-pads every motion to this length
MIN_CLIP_FRAMES, MAX_CLIP_FRAMES = 40, 200  # test clips kept by the official loader: [40, 200) frames
CONTACT_DIMS = 4       # foot-contact values at the end of each feature vector, not seen by the evaluator

# Part-of-speech categories in one-hot order; the *_VIP categories replace the tag of listed motion words.
POS_CATEGORIES = ("VERB", "NOUN", "DET", "ADP", "NUM", "AUX", "PRON", "ADJ", "ADV",
                  "Loc_VIP", "Body_VIP", "Obj_VIP", "Act_VIP", "Desc_VIP", "OTHER")
VIP_WORDS = {  # checked in this order; a word in several lists takes the first
    "Loc_VIP": "left right clockwise counterclockwise anticlockwise forward back backward up down straight curve",
    "Body_VIP": "arm chin foot feet face hand mouth leg waist eye knee shoulder thigh",
    "Obj_VIP": "stair dumbbell chair window floor car ball handrail baseball basketball",
    "Act_VIP": "walk run swing pick bring kick put squat throw hop dance jump turn stumble stop sit lift lower "
               "raise wash stand kneel stroll rub bend balance flap jog shuffle lean rotate spin spread climb",
    "Desc_VIP": "slowly carefully fast careful slow quickly happy angry sad happily angrily sadly",
}


class OfficialEvaluatorError(ValueError):
    """The official evaluator folder is incomplete or a file in it is malformed; the message names the file."""


# ------------------------------------------------------------------------------------------ networks

class MovementConvEncoder(nn.Module):
    """(B, T, D − 4) normalised features → (B, T / 4, output_size)."""

    def __init__(self, *, input_size: int, hidden_size: int = 512, output_size: int = 512, dropout: float = 0.2):
        super().__init__()
        self.main = nn.Sequential(  # module indices 0 and 3 are the convolutions (checkpoint key names)
            nn.Conv1d(input_size, hidden_size, 4, stride=2, padding=1), nn.Dropout(dropout), nn.LeakyReLU(0.2),
            nn.Conv1d(hidden_size, output_size, 4, stride=2, padding=1), nn.Dropout(dropout), nn.LeakyReLU(0.2),
        )
        self.out_net = nn.Linear(output_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_net(self.main(x.transpose(1, 2)).transpose(1, 2))


class BiGRUCo(nn.Module):
    """Linear input map, bidirectional GRU from a learned initial state, MLP over both final states."""

    def __init__(self, *, input_size: int, hidden_size: int, output_size: int = 512):
        super().__init__()
        self.input_emb = nn.Linear(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(nn.Linear(2 * hidden_size, hidden_size), nn.LayerNorm(hidden_size),
                                        nn.LeakyReLU(0.2), nn.Linear(hidden_size, output_size))
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden_size))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, input_size), lengths (B,) valid steps ≥ 1 → (B, output_size)."""
        packed = nn.utils.rnn.pack_padded_sequence(self.input_emb(x), lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _, last = self.gru(packed, self.hidden.expand(-1, x.shape[0], -1).contiguous())
        return self.output_net(torch.cat([last[0], last[1]], dim=-1))


class MotionEncoderBiGRUCo(BiGRUCo):
    def __init__(self, *, input_size: int = 512, hidden_size: int = 1024, output_size: int = 512):
        super().__init__(input_size=input_size, hidden_size=hidden_size, output_size=output_size)


class TextEncoderBiGRUCo(BiGRUCo):
    def __init__(self, *, word_size: int = 300, pos_size: int = len(POS_CATEGORIES), hidden_size: int = 512,
                 output_size: int = 512):
        super().__init__(input_size=word_size, hidden_size=hidden_size, output_size=output_size)
        self.pos_emb = nn.Linear(pos_size, word_size)

    def forward(self, word_emb: torch.Tensor, pos_onehot: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return super().forward(word_emb + self.pos_emb(pos_onehot), lengths)


# ------------------------------------------------------------------------------------------- words

def caption_tokens(caption) -> list[str]:
    """``word/POS`` tokens of a caption: its stored tokens field, or our tagger's for a plain string."""
    tokens = getattr(caption, "tokens", "") or ""
    if not tokens.strip():
        text = caption if isinstance(caption, str) else getattr(caption, "text", None)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"caption must be a non-empty string or have .text/.tokens, got {caption!r}")
        tokens = tokens_string(text)
    return tokens.split()


class WordVectors:
    """GloVe lookup of ``word/POS`` tokens: (vector (300,), one-hot index into ``POS_CATEGORIES``)."""

    def __init__(self, words: list[str], vectors: np.ndarray):
        if vectors.ndim != 2 or len(words) != vectors.shape[0]:
            raise ValueError(f"{len(words)} words but vectors of shape {vectors.shape}")
        self.index = {w: i for i, w in enumerate(words)}
        if "unk" not in self.index:
            raise ValueError("the vocabulary has no 'unk' word (unknown words map to it)")
        self.vectors = vectors.astype(np.float32)
        self.category = {w: name for name, ws in reversed(VIP_WORDS.items()) for w in ws.split()}

    def __len__(self) -> int:
        return len(self.index)

    def lookup(self, token: str) -> tuple[np.ndarray, int]:
        word, sep, pos = token.rpartition("/")
        if not sep:
            word, pos = token, "OTHER"
        if word not in self.index:
            return self.vectors[self.index["unk"]], POS_CATEGORIES.index("OTHER")
        pos = self.category.get(word, pos)
        return self.vectors[self.index[word]], POS_CATEGORIES.index(pos if pos in POS_CATEGORIES else "OTHER")

    def encode(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
        """(word vectors (22, 300), POS one-hots (22, 15), length): ≤ 20 tokens between sos and eos, unk-padded."""
        seq = ["sos/OTHER"] + list(tokens[:MAX_TEXT_TOKENS]) + ["eos/OTHER"]
        length = len(seq)
        seq += ["unk/OTHER"] * (MAX_TEXT_TOKENS + 2 - length)
        vecs = np.zeros((len(seq), self.vectors.shape[1]), np.float32)
        onehot = np.zeros((len(seq), len(POS_CATEGORIES)), np.float32)
        for i, token in enumerate(seq):
            vecs[i], pos = self.lookup(token)
            onehot[i, pos] = 1.0
        return vecs, onehot, length


# ---------------------------------------------------------------------------------------- loading

def check_folder(folder: str | Path) -> dict[str, Path]:
    """Paths of the required files; one error listing every missing one."""
    folder = Path(folder)
    paths = {name: folder / name for name in REQUIRED_FILES}
    missing = [name for name, p in paths.items() if not p.is_file()]
    if missing:
        hint = ""
        if WORDS in missing and (folder / "glove/our_vab_words.pkl").is_file():
            hint = (f"; {folder / 'glove/our_vab_words.pkl'} is a pickle, which is not loaded: convert it once "
                    "into a string array with np.save('our_vab_words.npy', np.array(words))")
        raise OfficialEvaluatorError(f"official evaluator folder {folder} lacks: {', '.join(missing)}{hint}")
    return paths


def _load_array(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise OfficialEvaluatorError(
                f"{path}: {what} is stored as pickled Python objects, which are not loaded; save it as a plain "
                f"array instead (for the words: np.save('our_vab_words.npy', np.array(list_of_words)))") from None
        raise OfficialEvaluatorError(f"cannot read {path}: {exc}") from None
    except OSError as exc:
        raise OfficialEvaluatorError(f"cannot read {path}: {exc}") from None


def load_word_vectors(folder: str | Path) -> WordVectors:
    folder = Path(folder)
    vectors = _load_array(folder / VECTORS, "the word vectors")
    words = _load_array(folder / WORDS, "the word list")
    if words.ndim != 1 or words.dtype.kind not in "US":
        raise OfficialEvaluatorError(f"{folder / WORDS}: expected a 1-d string array, got {words.dtype} {words.shape}")
    words = [w.decode() if isinstance(w, bytes) else str(w) for w in words.tolist()]
    try:
        return WordVectors(words, vectors)
    except ValueError as exc:
        raise OfficialEvaluatorError(f"{folder / 'glove'}: {exc}") from None


def _load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise OfficialEvaluatorError(f"cannot load {path} as plain tensors: {exc}") from None
    parts = ("text_encoder", "movement_encoder", "motion_encoder")
    if not isinstance(state, dict) or any(not isinstance(state.get(p), dict) for p in parts):
        raise OfficialEvaluatorError(f"{path}: expected a dict with state dicts {', '.join(parts)}")
    return state


# -------------------------------------------------------------------------------------- evaluator

class OfficialEvaluator:
    """The released networks + statistics + word vectors; ``embed_motion`` / ``embed_text`` give (N, 512) arrays."""

    def __init__(self, *, text_encoder: TextEncoderBiGRUCo, movement_encoder: MovementConvEncoder,
                 motion_encoder: MotionEncoderBiGRUCo, mean: np.ndarray, std: np.ndarray, words: WordVectors,
                 device: str = "cpu"):
        self.text_encoder = text_encoder.to(device).eval()
        self.movement_encoder = movement_encoder.to(device).eval()
        self.motion_encoder = motion_encoder.to(device).eval()
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.words = words
        self.device = device

    @property
    def dim_pose(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def load(cls, folder: str | Path, *, device: str = "cpu") -> "OfficialEvaluator":
        paths = check_folder(folder)
        mean, std = _load_array(paths[MEAN], "the mean"), _load_array(paths[STD], "the std")
        if mean.ndim != 1 or mean.shape != std.shape or not np.isfinite(mean).all() or not (std > 0).all():
            raise OfficialEvaluatorError(f"{paths[MEAN]} / {paths[STD]}: expected finite (D,) vectors with "
                                         f"std > 0, got shapes {mean.shape} and {std.shape}")
        words = load_word_vectors(folder)
        state = _load_checkpoint(paths[CHECKPOINT])
        nets = {"text_encoder": TextEncoderBiGRUCo(word_size=words.vectors.shape[1]),
                "movement_encoder": MovementConvEncoder(input_size=mean.shape[0] - CONTACT_DIMS),
                "motion_encoder": MotionEncoderBiGRUCo()}
        for name, net in nets.items():
            try:
                net.load_state_dict(state[name])
            except RuntimeError as exc:
                raise OfficialEvaluatorError(f"{paths[CHECKPOINT]}: '{name}' does not fit the official network "
                                             f"for {mean.shape[0]}-d features: {exc}") from None
        return cls(**nets, mean=mean, std=std, words=words, device=device)

    # ------------------------------------------------------------------ tensors

    @torch.no_grad()
    def encode_motion(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) normalised with the evaluator's statistics, lengths (B,) multiples of 4 → (B, 512)."""
        movements = self.movement_encoder(x[..., :-CONTACT_DIMS].to(self.device))
        return self.motion_encoder(movements, torch.div(lengths, UNIT, rounding_mode="floor"))

    @torch.no_grad()
    def encode_text(self, word_emb: torch.Tensor, pos_onehot: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(word_emb.to(self.device), pos_onehot.to(self.device), lengths)

    # ------------------------------------------------------------------ protocol interface

    def embed_motion(self, features: list[np.ndarray], *, batch: int = 64) -> np.ndarray:
        """(N, 512) for de-normalised (T_i, D) features; each is cut to a multiple of 4 frames (≥ 4).

        Like the official loader, motions are zero-padded (after normalisation) to at least 196 frames, so a
        motion's embedding does not depend on the others in its batch.
        """
        lengths = []
        for i, f in enumerate(features):
            if f.ndim != 2 or f.shape[1] != self.dim_pose:
                raise ValueError(f"features[{i}] must be (T, {self.dim_pose}), got {f.shape}")
            if f.shape[0] < UNIT:
                raise ValueError(f"features[{i}] has {f.shape[0]} frames; the evaluator needs at least {UNIT}")
            lengths.append(f.shape[0] // UNIT * UNIT)
        groups: dict[int, list[int]] = {}  # padded length -> indices; motions longer than 196 frames stay unpadded
        for i, n in enumerate(lengths):
            groups.setdefault(max(MAX_MOTION_FRAMES, n), []).append(i)
        out = np.zeros((len(features), 512), np.float32)
        for padded, idx in groups.items():
            for b in range(0, len(idx), batch):
                chunk = idx[b:b + batch]
                x = torch.zeros(len(chunk), padded, self.dim_pose)
                for row, i in enumerate(chunk):
                    x[row, :lengths[i]] = torch.from_numpy((features[i][:lengths[i]] - self.mean) / self.std)
                emb = self.encode_motion(x, torch.tensor([lengths[i] for i in chunk]))
                out[chunk] = emb.cpu().numpy()
        return out

    def embed_text(self, captions, *, batch: int = 256) -> np.ndarray:
        """(N, 512) for captions: objects with ``.tokens`` (``word/POS ...``) and ``.text``, or plain strings."""
        encoded = [self.words.encode(caption_tokens(c)) for c in captions]
        out = []
        for b in range(0, len(encoded), batch):
            chunk = encoded[b:b + batch]
            emb = self.encode_text(torch.from_numpy(np.stack([e[0] for e in chunk])),
                                   torch.from_numpy(np.stack([e[1] for e in chunk])),
                                   torch.tensor([e[2] for e in chunk]))
            out.append(emb.cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 512), np.float32)


# --------------------------------------------------------------------------- the official test set

@dataclass
class EvalSample:
    """One test item of the official protocol: a clip (or a captioned part of one) and its captions."""
    id: str
    features: np.ndarray  # (T, D) de-normalised
    captions: list
    meta: dict = field(default_factory=dict)


def official_samples(clips, *, min_frames: int = MIN_CLIP_FRAMES, max_frames: int = MAX_CLIP_FRAMES
                     ) -> list[EvalSample]:
    """Test items as the official loader builds them: a clip of [40, 200) frames with its whole-clip captions,
    plus every sub-range caption whose part is [40, 200) frames long, as an item of its own."""
    out = []
    for clip in clips:
        whole = []
        for cap in clip.captions:
            n = cap.end_frame - cap.start_frame
            if cap.start_frame == 0 and cap.end_frame == len(clip.features):
                whole.append(cap)
            elif min_frames <= n < max_frames:
                out.append(EvalSample(f"{clip.id}@{cap.start_frame}",
                                      clip.features[cap.start_frame:cap.end_frame], [cap], clip.meta))
        if whole and min_frames <= len(clip.features) < max_frames:
            out.append(EvalSample(clip.id, clip.features, whole, clip.meta))
    return out


def crop_for_eval(features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random window of a multiple of 4 frames, as the official loader takes it: the length rounded down to
    a multiple of 4, one unit shorter with probability 1/3."""
    units = len(features) // UNIT
    if rng.random() < 1 / 3 and units > 1:
        units -= 1
    start = int(rng.integers(0, len(features) - units * UNIT + 1))
    return features[start:start + units * UNIT]
