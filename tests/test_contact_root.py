"""Contact-consistent root (`motion.contact_root`): planted toes stay still, other steps keep the decoded
root, and the tokenizer flag reaches the loss, the reconstruction figures and every decoding back end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model_core.eval.dynamics import foot_skate
from model_core.motion.contact_root import TOE_CONTACTS, TOE_RIC, TOES, contact_root
from model_core.motion.features import FEATURE_DIM, recover_from_ric


def _drifting_stance(frames: int = 20, yaw_velocity: float = 0.0, contacts=(1.0, 1.0)) -> np.ndarray:
    """Features of a body whose toes keep their place relative to the root while the root velocity channels
    drift (0.01, 0.02) m/frame; toe contact channels as given on frames 5..14, off elsewhere."""
    f = np.zeros((frames, FEATURE_DIM), np.float32)
    f[:, 0] = yaw_velocity
    f[:, 1:3] = (0.01, 0.02)
    f[:, 3] = 0.9
    f[:, TOE_RIC[0]:TOE_RIC[0] + 3] = (0.1, -0.85, 0.12)
    f[:, TOE_RIC[1]:TOE_RIC[1] + 3] = (-0.1, -0.85, 0.08)
    for channel, value in zip(TOE_CONTACTS, contacts):
        f[5:15, channel] = value
    return f


def _toe_steps(features) -> np.ndarray:
    """(T - 1, 2) horizontal distance each toe travels per step."""
    toes = recover_from_ric(features)[:, list(TOES)][..., [0, 2]]
    return np.linalg.norm(np.diff(toes, axis=0), axis=-1)


def test_planted_toes_stay_still_and_other_steps_keep_the_decoded_root():
    f = _drifting_stance()
    before, after = _toe_steps(f), _toe_steps(contact_root(f))
    assert before[5:14].min() > 0.02  # the drifting root carries the toes along
    np.testing.assert_allclose(after[5:14], 0.0, atol=1e-6)  # steps 5->6 ... 13->14: both frames planted
    np.testing.assert_allclose(after[:5], before[:5], atol=1e-6)
    np.testing.assert_allclose(after[14:], before[14:], atol=1e-6)
    np.testing.assert_array_equal(contact_root(f)[:, 3:], f[:, 3:])  # only the root velocity changes


def test_a_turning_body_keeps_the_midpoint_of_its_planted_toes():
    # turning about the root moves both toes; a root translation can hold their mean, not each
    toes = recover_from_ric(contact_root(_drifting_stance(yaw_velocity=0.05)))[:, list(TOES)][..., [0, 2]]
    np.testing.assert_allclose(np.diff(toes.mean(axis=1), axis=0)[5:14], 0.0, atol=1e-6)


@pytest.mark.parametrize("yaw_velocity", [0.0, 0.05])
def test_one_planted_toe_is_held_and_a_half_contact_moves_the_root_half_way(yaw_velocity):
    f = _drifting_stance(yaw_velocity=yaw_velocity, contacts=(1.0, 0.0))
    f[:, TOE_RIC[1]] += np.linspace(0.0, 0.2, len(f))  # the free toe swings forward relative to the root
    after = _toe_steps(contact_root(f))
    np.testing.assert_allclose(after[5:14, 0], 0.0, atol=1e-6)
    assert after[5:14, 1].min() > 0.005
    half = contact_root(_drifting_stance(contacts=(0.5, 0.0)))
    np.testing.assert_allclose(half[5:14, 1:3], 0.5 * _drifting_stance()[5:14, 1:3], atol=1e-6)


def test_numpy_and_torch_agree_and_torch_is_differentiable():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(2, 16, FEATURE_DIM)).astype(np.float32)
    f[..., 259:] = rng.uniform(-0.2, 1.2, size=(2, 16, 4))  # decoded contacts stray outside [0, 1]
    out = contact_root(f)
    assert out.dtype == np.float32 and out.shape == f.shape
    t = torch.from_numpy(f).requires_grad_()
    out_t = contact_root(t)
    np.testing.assert_allclose(out_t.detach().numpy(), out, atol=1e-5)
    out_t[..., 1:3].sum().backward()
    assert torch.isfinite(t.grad).all() and t.grad[..., TOE_RIC[0]].abs().sum() > 0
    assert contact_root(f[0, :1]).shape == (1, FEATURE_DIM)  # one frame: no step to change


@pytest.mark.data
@pytest.mark.parametrize("clip_id", ["007005", "012314", "M010655"])
def test_real_clips_slide_less_never_more(hml_dir, clip_id):
    f = np.load(hml_dir / "new_joint_vecs" / f"{clip_id}.npy")
    assert foot_skate(recover_from_ric(contact_root(f))) <= foot_skate(recover_from_ric(f))


def test_the_tokenizer_flag_reaches_the_loss():
    from model_core.models.vq import RVQVAE, VQ_PRESETS
    from dataclasses import replace
    torch.manual_seed(0)
    plain = RVQVAE(replace(VQ_PRESETS["tiny"], pos_weight=1.0))
    rooted = RVQVAE(replace(plain.config, contact_root=True))
    rooted.load_state_dict(plain.state_dict())
    plain.eval(), rooted.eval()
    x = torch.randn(2, 16, FEATURE_DIM)
    x[..., 259:] = 1.0  # planted toes throughout
    mean, std = torch.zeros(FEATURE_DIM), torch.ones(FEATURE_DIM)
    with torch.no_grad():
        a, b = plain.loss(x, mean=mean, std=std)[1]["pos"], rooted.loss(x, mean=mean, std=std)[1]["pos"]
    assert np.isfinite(a) and np.isfinite(b) and a != b


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_the_tokenizer_flag_must_be_a_boolean(value):
    from model_core.models.vq import RVQVAEConfig
    with pytest.raises(ValueError, match="contact_root must be true or false"):
        RVQVAEConfig(contact_root=value)


def test_runtime_configs_without_the_flag_read_as_off():
    from model_core.decoding.nets import NetsConfig
    keys = dict(code_num=8, max_tokens=6, res_max_tokens=6, num_quantizers=2, frames_per_token=4, fps=20.0,
                text_dim=4, input_dim=263)
    assert NetsConfig.from_json(keys).contact_root is False
    assert NetsConfig.from_json({**keys, "contact_root": True}).contact_root is True
    with pytest.raises(ValueError, match="expected the keys"):
        NetsConfig.from_json({**keys, "contact_roots": True})


@pytest.fixture(scope="module")
def rooted_weights(tmp_path_factory):
    from model_core.decoding.generate import BAMM
    folder = tmp_path_factory.mktemp("rooted") / "weights"
    BAMM.random(preset="tiny", text_encoder="minilm", seed=0).save_pretrained(folder, text_encoder_spec="minilm")
    meta = json.loads((folder / "vq.json").read_text())
    meta["config"]["contact_root"] = True
    (folder / "vq.json").write_text(json.dumps(meta))
    return folder


def test_decoding_applies_the_flag_of_the_weights(rooted_weights):
    from model_core.decoding.generate import BAMM
    bamm = BAMM.from_pretrained(rooted_weights)
    assert bamm.nets.config.contact_root
    codes = np.random.default_rng(0).integers(0, bamm.nets.config.code_num, size=(6, 2))
    raw = (bamm.nets.vq_decode(codes[None])[0] * bamm.nets.std + bamm.nets.mean).astype(np.float32)
    feats, joints = bamm.decode(codes)
    np.testing.assert_allclose(feats, contact_root(raw), atol=1e-6)
    np.testing.assert_allclose(joints, recover_from_ric(contact_root(raw)), atol=1e-5)
