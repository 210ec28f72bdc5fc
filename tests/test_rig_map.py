"""Rig mapping onto SMPL-22: real Bandai-Namco clips and synthetic Mixamo, CMU and SMPL rigs."""

from __future__ import annotations


import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from model_core.motion import bvh, rig_map
from model_core.motion.skeleton import JOINT_INDEX, JOINT_NAMES, PARENTS, TARGET_OFFSETS, bone_lengths
from support.bandai import first_bvh_texts

FEET = [JOINT_INDEX[j] for j in ("l_ankle", "r_ankle", "l_foot", "r_foot")]


@pytest.fixture(scope="module")
def bandai_clips(bandai_dir) -> list[bvh.BvhClip]:
    """The first three clips of dataset-1 (standing bows)."""
    return [bvh.parse_bvh(text, name) for name, text in first_bvh_texts(bandai_dir, 3).items()]


BANDAI_MAPPING = {
    "pelvis": "Hips", "l_hip": "UpperLeg_L", "r_hip": "UpperLeg_R", "l_knee": "LowerLeg_L", "r_knee": "LowerLeg_R",
    "l_ankle": "Foot_L", "r_ankle": "Foot_R", "l_foot": "Toes_L", "r_foot": "Toes_R", "neck": "Neck", "head": "Head",
    "spine3": "Chest", "l_collar": "Shoulder_L", "r_collar": "Shoulder_R", "l_shoulder": "UpperArm_L",
    "r_shoulder": "UpperArm_R", "l_elbow": "LowerArm_L", "r_elbow": "LowerArm_R", "l_wrist": "Hand_L",
    "r_wrist": "Hand_R",
}


def test_bandai_clips_map_to_plausible_smpl_joints(bandai_clips):
    for clip in bandai_clips:
        joints, report = rig_map.to_smpl22(clip)
        n_frames = clip.n_frames
        assert joints.dtype == np.float32 and joints.shape == (report.frames, 22, 3)
        assert report.frames == int(np.floor((n_frames - 1) * 20 / 30 + 1e-6)) + 1
        assert abs(report.frames - round(n_frames * 20 / 30)) <= 1
        assert (report.unit, report.scale, report.up_axis, report.source_fps) == ("cm", 0.01, "y", 30.0)
        assert {k: report.mapping[k] for k in BANDAI_MAPPING} == BANDAI_MAPPING
        assert report.mapping["spine1"].startswith("lerp(Hips, Spine")
        assert report.mapping["spine2"].startswith("lerp(Spine, Chest")

        lengths = bone_lengths(joints)[:, 1:]
        assert lengths.std(axis=0).max() < 1e-3  # metres: rigid bones after mapping and resampling
        assert lengths.min() > 0.03
        height = joints[:, :, 1]
        assert set(np.unique(height.argmin(axis=1))) <= set(FEET)  # the feet are the lowest joints
        assert 0.0 <= height[:, FEET].min() < 0.06  # and touch the floor
        # Stature 1.4-2.0 m: the head joint sits at the skull base, 15-25 cm below the top of the head.
        assert 1.2 < height[0, JOINT_INDEX["head"]] - height[0].min() < 1.8
        assert 0.75 < report.height / rig_map.REFERENCE_HEIGHT < 1.25
        assert height[0, JOINT_INDEX["head"]] > height[0, JOINT_INDEX["neck"]]  # Y-up (heads go down in a bow)
        for upper, lower in [("head", "pelvis"), ("pelvis", "l_knee"), ("pelvis", "r_knee"), ("l_knee", "l_ankle")]:
            assert (height[:, JOINT_INDEX[upper]] > height[:, JOINT_INDEX[lower]]).all()


def test_bandai_mapping_keeps_source_positions(bandai_clips):
    clip = bandai_clips[0]
    joints, _ = rig_map.to_smpl22(clip, target_fps=30.0)
    source = bvh.forward_kinematics(clip) * 0.01
    for smpl, bone in BANDAI_MAPPING.items():
        np.testing.assert_allclose(joints[:, JOINT_INDEX[smpl]], source[:, clip.skeleton.names.index(bone)],
                                   atol=1e-5)


# ------------------------------------------------------------------------------------- synthetic rigs

LEFT_LEG = [("UpLeg", "Hips", (9, -6, 0)), ("Leg", "UpLeg", (0, -42, 0)), ("Foot", "Leg", (0, -40, 0)),
            ("ToeBase", "Foot", (0, -8, 12))]
LEFT_ARM = [("Shoulder", "Spine2", (6, 10, 0)), ("Arm", "Shoulder", (12, 0, 0)), ("ForeArm", "Arm", (26, 0, 0)),
            ("Hand", "ForeArm", (25, 0, 0))]


def _mirror(bones):
    out = []
    for prefix, sign in (("Left", 1), ("Right", -1)):
        for name, parent, (x, y, z) in bones:
            out.append((prefix + name, parent if parent in ("Hips", "Spine2") else prefix + parent, (sign * x, y, z)))
    return out


MIXAMO = [("Hips", None, (0, 100, 0)), ("Spine", "Hips", (0, 10, 0)), ("Spine1", "Spine", (0, 12, 0)),
          ("Spine2", "Spine1", (0, 14, 0)), ("Neck", "Spine2", (0, 15, 0)), ("Head", "Neck", (0, 10, 0)),
          *_mirror(LEFT_ARM), *_mirror(LEFT_LEG)]
MIXAMO = [("mixamorig:" + n, None if p is None else "mixamorig:" + p, o) for n, p, o in MIXAMO]
CMU = [("Hips", None, (0, 17, 0)), ("LowerBack", "Hips", (0, 0, 0)), ("Spine", "LowerBack", (0, 2, 0)),
       ("Spine1", "Spine", (0, 2.2, 0)), ("Neck", "Spine1", (0, 1.9, 0)), ("Neck1", "Neck", (0, 0.8, 0)),
       ("Head", "Neck1", (0, 0.9, 0)),
       ("LHipJoint", "Hips", (0, 0, 0)), ("LeftUpLeg", "LHipJoint", (1.6, -1.1, 0)),
       ("LeftLeg", "LeftUpLeg", (0, -7.2, 0)),
       ("LeftFoot", "LeftLeg", (0, -7.1, 0)), ("LeftToeBase", "LeftFoot", (0, -1.2, 2.1)),
       ("RHipJoint", "Hips", (0, 0, 0)), ("RightUpLeg", "RHipJoint", (-1.6, -1.1, 0)),
       ("RightLeg", "RightUpLeg", (0, -7.2, 0)), ("RightFoot", "RightLeg", (0, -7.1, 0)),
       ("RightToeBase", "RightFoot", (0, -1.2, 2.1)),
       ("LeftShoulder", "Spine1", (1.1, 1.7, 0)), ("LeftArm", "LeftShoulder", (2.5, 0, 0)),
       ("LeftForeArm", "LeftArm", (4.6, 0, 0)), ("LeftHand", "LeftForeArm", (4.4, 0, 0)),
       ("LeftFingerBase", "LeftHand", (0.8, 0, 0)), ("LeftHandIndex1", "LeftFingerBase", (0.4, 0, 0)),
       ("LThumb", "LeftHand", (0.4, 0, 0.4)),
       ("RightShoulder", "Spine1", (-1.1, 1.7, 0)), ("RightArm", "RightShoulder", (-2.5, 0, 0)),
       ("RightForeArm", "RightArm", (-4.6, 0, 0)), ("RightHand", "RightForeArm", (-4.4, 0, 0))]
SMPL_NAMES = ["Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle", "Spine3",
              "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow",
              "R_Elbow", "L_Wrist", "R_Wrist"]
SMPL = [(n, None if p < 0 else SMPL_NAMES[p], tuple(o)) for n, p, o in zip(SMPL_NAMES, PARENTS, TARGET_OFFSETS)]
SMPL_LOWER = [(n.lower().replace("l_", "left_").replace("r_", "right_"), p and p.lower().replace("l_", "left_")
               .replace("r_", "right_"), o) for n, p, o in SMPL]


def _rig_clip(bones, *, n_frames=8, degrees=12.0, end_sites=(), seed=0):
    """A clip of the rig ``bones`` (name, parent name, offset) with random small rotations."""
    names = [b[0] for b in bones]
    parents = [-1 if p is None else names.index(p) for _, p, _ in bones]
    offsets = np.array([b[2] for b in bones], dtype=float)
    rng = np.random.default_rng(seed)
    rotations = Rotation.from_rotvec(np.radians(degrees) * rng.uniform(-1, 1, size=(n_frames * len(bones), 3)))
    root = offsets[0] + rng.normal(scale=0.05 * np.abs(offsets).max(), size=(n_frames, 3))
    ends = {names.index(n): np.asarray(o, dtype=float) for n, o in end_sites}
    return bvh.clip_from_rotations(names, parents, offsets, root, rotations, 30.0, "ZXY", end_sites=ends)


def _check_direct(clip, joints, report, expected):
    source = bvh.forward_kinematics(clip)
    for smpl, bone in expected.items():
        assert report.mapping[smpl] == bone
        np.testing.assert_allclose(joints[:, JOINT_INDEX[smpl]], source[:, clip.skeleton.names.index(bone)]
                                   * report.scale, atol=1e-5)


MIXAMO_EXPECTED = {"pelvis": "Hips", "spine1": "Spine", "neck": "Neck", "head": "Head", "l_collar": "LeftShoulder",
                   "l_shoulder": "LeftArm", "l_elbow": "LeftForeArm", "l_wrist": "LeftHand", "r_wrist": "RightHand",
                   "l_hip": "LeftUpLeg", "l_knee": "LeftLeg", "l_ankle": "LeftFoot", "l_foot": "LeftToeBase",
                   "r_foot": "RightToeBase"}
CMU_EXPECTED = {"pelvis": "Hips", "neck": "Neck", "head": "Head", "l_collar": "LeftShoulder", "r_shoulder": "RightArm",
                "l_elbow": "LeftForeArm", "l_wrist": "LeftHand", "l_hip": "LeftUpLeg", "r_knee": "RightLeg",
                "l_ankle": "LeftFoot", "r_foot": "RightToeBase"}


@pytest.mark.parametrize("rig, expected, unit", [
    (MIXAMO, {k: f"mixamorig:{v}" for k, v in MIXAMO_EXPECTED.items()}, "cm"),
    (CMU, CMU_EXPECTED, "cmu"),
    (SMPL, dict(zip(JOINT_NAMES, SMPL_NAMES)), "m"),
    (SMPL_LOWER, dict(zip(JOINT_NAMES, [n for n, _, _ in SMPL_LOWER])), "m"),
], ids=["mixamo", "cmu", "smpl", "smpl-lower"])
def test_synthetic_rigs_map(rig, expected, unit):
    clip = _rig_clip(rig)
    joints, report = rig_map.to_smpl22(clip, target_fps=30.0)
    assert report.unit == unit and report.up_axis == "y" and report.frames == clip.n_frames
    _check_direct(clip, joints, report, expected)
    assert np.isfinite(joints).all()
    assert (joints[:, JOINT_INDEX["head"], 1] > joints[:, JOINT_INDEX["pelvis"], 1]).all()


def test_spine_interpolation_follows_the_chain():
    clip = _rig_clip(CMU)
    joints, report = rig_map.to_smpl22(clip, target_fps=30.0)
    assert report.mapping["spine1"].startswith("lerp(LowerBack, Spine, ")  # LowerBack sits on the hips
    source = bvh.forward_kinematics(clip) * report.scale
    names = clip.skeleton.names
    a, b = source[:, names.index("LowerBack")], source[:, names.index("Spine")]
    w = rig_map.SPINE_FRACTIONS[0] * (2 + 2.2 + 1.9) / 2  # chain Hips-LowerBack-Spine-Spine1-Neck: 0, 2, 2.2, 1.9
    np.testing.assert_allclose(joints[:, JOINT_INDEX["spine1"]], a + w * (b - a), atol=1e-6)


def test_fallbacks_collar_and_toe_from_end_site():
    plain = [(n.split(":")[-1], p and p.split(":")[-1], o) for n, p, o in MIXAMO]  # no namespace this time
    no_collar = [(n, "Spine2" if p == "LeftShoulder" else p, o) for n, p, o in plain
                 if n not in ("LeftShoulder", "LeftToeBase")]
    clip = _rig_clip(no_collar, end_sites=[("LeftFoot", (0, -8, 12))])
    joints, report = rig_map.to_smpl22(clip, target_fps=30.0)
    assert report.mapping["l_collar"] == "lerp(neck, l_shoulder, 0.50)"
    assert report.mapping["r_collar"] == "RightShoulder" and report.mapping["l_foot"] == "end site of LeftFoot"
    j = {name: joints[:, i] for i, name in enumerate(JOINT_NAMES)}
    np.testing.assert_allclose(j["l_collar"], (j["neck"] + j["l_shoulder"]) / 2, atol=1e-6)
    np.testing.assert_allclose(j["l_foot"], bvh.end_site_positions(clip)[:, clip.skeleton.names.index("LeftFoot")]
                               * 0.01, atol=1e-6)


def test_z_up_centimetre_rig_matches_y_up_metre_rig():
    y_up = _rig_clip(SMPL, seed=4)
    to_z = Rotation.from_euler("X", 90, degrees=True)  # (x, y, z) -> (x, -z, y)
    z_up = bvh.BvhClip(bvh.BvhSkeleton([bvh.BvhJoint(j.name, j.parent, j.offset * 100, j.channels, j.end_site)
                                        for j in y_up.skeleton.joints]), y_up.frame_time, y_up.motion.copy())
    root_rot = Rotation.from_euler("ZXY", y_up.motion[:, 3:6], degrees=True)
    z_up.motion[:, :3] = to_z.apply(y_up.motion[:, :3]) * 100
    z_up.motion[:, 3:6] = (to_z * root_rot).as_euler("ZXY", degrees=True)
    z_positions = bvh.forward_kinematics(z_up)[..., 2]
    assert (z_positions[:, y_up.skeleton.names.index("Head")] > z_positions[:, 0]).all()  # the head is above in Z
    expected, _ = rig_map.to_smpl22(y_up)
    joints, report = rig_map.to_smpl22(z_up)
    assert (report.up_axis, report.unit) == ("z", "cm")
    np.testing.assert_allclose(joints, expected, atol=1e-5)
    forced, _ = rig_map.to_smpl22(z_up, up_axis="z", unit=0.01)
    np.testing.assert_allclose(forced, expected, atol=1e-5)


# ----------------------------------------------------------------------------------------------- errors

def test_rig_without_legs_names_the_missing_joints():
    clip = _rig_clip([b for b in MIXAMO if "Leg" not in b[0] and "Foot" not in b[0] and "Toe" not in b[0]])
    clip.source = "upper_body.bvh"
    with pytest.raises(rig_map.RigMappingError, match=r"^upper_body\.bvh: .*unmapped: l_hip, r_hip, l_knee, r_knee, "
                                                      "l_ankle, r_ankle, l_foot, r_foot "):
        rig_map.to_smpl22(clip)


def test_inconsistent_hierarchy_is_rejected():
    swapped = [(n, "mixamorig:Hips" if n == "mixamorig:LeftLeg" else p, o) for n, p, o in MIXAMO]
    with pytest.raises(rig_map.RigMappingError, match="LeftLeg' mapped to l_knee is not below"):
        rig_map.to_smpl22(_rig_clip(swapped))


def test_lying_rig_has_no_up_axis():
    lying = [(n, p, (o[1], -o[0], o[2])) for n, p, o in SMPL]  # body along +X
    with pytest.raises(rig_map.RigMappingError, match="up axis"):
        rig_map.to_smpl22(_rig_clip(lying, degrees=0.0))


@pytest.mark.parametrize("kwargs", [{"unit": "furlong"}, {"unit": -1.0}, {"up_axis": "x"}, {"target_fps": 0.0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        rig_map.to_smpl22(_rig_clip(SMPL), **kwargs)


# ------------------------------------------------------------------------------------------ building blocks

@pytest.mark.parametrize("name, side, base", [
    ("mixamorig:LeftUpLeg", "l", "upleg"), ("mixamorig1:RightForeArm", "r", "forearm"), ("Hand_L", "l", "hand"),
    ("LHipJoint", "l", "hipjoint"), ("joint_Root", None, "root"), ("L_Hip", "l", "hip"), ("left_hip", "l", "hip"),
    ("Bip01 R Calf", "r", "calf"), ("DEF-thigh.L", "l", "thigh"), ("upperarm_r", "r", "upperarm"),
    ("LEFTARM", "l", "arm"), ("RightHandIndex1", "r", "handindex1"), ("spine_01", None, "spine01"),
    ("m_avg_L_Hip", "l", "hip"), ("Toes_R", "r", "toes"), ("Hips", None, "hips"), ("LowerLeg_L", "l", "lowerleg"),
])
def test_normalize_bone_name(name, side, base):
    assert rig_map.normalize_bone_name(name) == (side, base)


@pytest.mark.parametrize("height, unit", [(1.45, "m"), (2.0, "m"), (95.0, "cm"), (160.0, "cm"), (1500.0, "mm"),
                                          (58.0, "inch"), (26.0, "cmu")])
def test_detect_unit(height, unit):
    assert rig_map.detect_unit(height) == unit


@pytest.mark.parametrize("n_frames, source_fps, target_fps, expected", [
    (90, 30.0, 20.0, 60), (91, 30.0, 20.0, 61), (2, 30.0, 20.0, 1), (1, 30.0, 20.0, 1), (120, 120.0, 20.0, 20),
    (11, 20.0, 20.0, 11), (4, 10.0, 20.0, 7),
])
def test_resample_counts_and_values(n_frames, source_fps, target_fps, expected):
    t = np.arange(n_frames) / source_fps
    signal = np.stack([3 * t + 1, -t], axis=-1)[:, None]  # linear in time: resampled exactly
    out = rig_map.resample(signal, source_fps, target_fps)
    assert out.shape == (expected, 1, 2)
    t_out = np.arange(expected) / target_fps
    np.testing.assert_allclose(out[:, 0], np.stack([3 * t_out + 1, -t_out], axis=-1), atol=1e-12)


def test_snap_fps():
    assert rig_map.snap_fps(1 / 0.0333333) == 30.0 and rig_map.snap_fps(1 / 0.008333) == 120.0
    assert rig_map.snap_fps(29.97) == 29.97
