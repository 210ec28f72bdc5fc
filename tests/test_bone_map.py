"""Bone mapping SMPL-22 -> character armatures: name rules, chain topology, presets, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import rigs

bpy = pytest.importorskip("bpy")
from bamm_blender import bone_map  # noqa: E402
from bamm_blender.errors import BammInputError  # noqa: E402

STYLES = sorted(rigs.STYLES)
NAMED = [s for s in STYLES if s != "german"]  # styles whose bone names the rules know
NON_DEFORM = ("ORG-", "MCH-", "ik_")


def rig_of(style: str, *, a_pose: bool = False, anonymous: bool = False) -> bone_map.Rig:
    """The template rig as ``bone_map.Rig`` (no Blender objects: fast)."""
    bones = rigs.rig_bones(style, a_pose=a_pose, anonymous=anonymous)
    plain = rigs.rig_bones(style, a_pose=a_pose)
    index = {b[0]: i for i, b in enumerate(bones)}
    return bone_map.Rig(
        names=[b[0] for b in bones], parents=[index[b[1]] if b[1] else -1 for b in bones],
        heads=np.array([b[2] for b in bones]), tails=np.array([b[3] for b in bones]), lateral=np.array([1.0, 0, 0]),
        deform=[not (b[0].startswith(NON_DEFORM) or "_fk" in b[0]) for b in plain])


@pytest.mark.parametrize("a_pose", [False, True], ids=["t_pose", "a_pose"])
@pytest.mark.parametrize("style", NAMED)
def test_names_map_every_rig_style(style, a_pose):
    rig = rig_of(style, a_pose=a_pose)
    assert bone_map.map_by_names(rig) == rigs.expected(style)
    assert bone_map.auto_map(rig) == rigs.expected(style)


@pytest.mark.parametrize("a_pose", [False, True], ids=["t_pose", "a_pose"])
@pytest.mark.parametrize("style", STYLES)
def test_topology_maps_rigs_with_meaningless_names(style, a_pose):
    """Bones renamed Bone.000 ...: hips from the chains, sides from X, wrists from fingers or arm halves."""
    rename = rigs.anonymous_names(style)
    rig = rig_of(style, a_pose=a_pose, anonymous=True)
    expected = {joint: rename[bone] for joint, bone in rigs.expected(style).items()}
    assert bone_map.map_by_names(rig) == {}
    assert bone_map.auto_map(rig) == expected


@pytest.mark.parametrize("a_pose", [False, True], ids=["t_pose", "a_pose"])
@pytest.mark.parametrize("style", ["german", "smplx", "bandai_namco"])
def test_topology_ignores_importer_made_leaf_lengths(style, a_pose):
    """An FBX importer gives leaf bones their parent's length (hands as long as forearms, a head as long as the
    neck): the chains must still give both arms and the head."""
    rig = rig_of(style, a_pose=a_pose, anonymous=True)
    for leaf in (i for i in range(len(rig.names)) if rig.is_leaf(i)):
        parent = rig.parents[leaf]
        direction = rig.tails[leaf] - rig.heads[leaf]
        length = np.linalg.norm(rig.tails[parent] - rig.heads[parent])
        rig.tails[leaf] = rig.heads[leaf] + direction / np.linalg.norm(direction) * length
    rename = rigs.anonymous_names(style)
    expected = {joint: rename[bone] for joint, bone in rigs.expected(style).items()}
    assert bone_map.map_by_topology(rig) == expected


def test_rigify_prefers_deform_bones_over_org_and_controls():
    mapping = bone_map.auto_map(rig_of("rigify"))
    assert all(bone.startswith("DEF-") for bone in mapping.values())
    assert mapping["head"] == "DEF-spine.006" and mapping["pelvis"] == "DEF-spine"


def test_mapping_shares_the_bvh_rule_table():
    """The same name rules serve BVH import (rig_map) and armature mapping: a rule added there maps here."""
    assert bone_map.rig_map.RULES and all(r.joint in bone_map.JOINTS for r in bone_map.rig_map.RULES)


def test_rig_from_armature_uses_world_space(tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    from mathutils import Matrix

    world = Matrix.Translation((1.0, 2.0, 0.0)) @ Matrix.Rotation(np.pi / 2, 4, "X")
    world = world @ Matrix.Diagonal((0.01, 0.01, 0.01, 1.0))  # FBX import: Y-up armature in cm
    obj = rigs.build_rig(bpy.context, "mixamo", matrix_world=np.array(world), roll=0.5)
    rig = bone_map.Rig.from_armature(obj)
    hips = rig.names.index("mixamorig:Hips")
    np.testing.assert_allclose(rig.heads[hips], rigs.P["pelvis"], atol=1e-5)
    assert bone_map.auto_map(rig) == rigs.expected("mixamo")
    assert not any(rig.deform[i] is False for i in range(len(rig.names)))


@pytest.mark.parametrize("bones, missing", [
    ([("Bone", None, (0, 0, 1), (0, 0, 2)), ("Bone.001", "Bone", (0, 0, 2), (0, 0, 3)),
      ("Bone.002", "Bone.001", (0, 0, 3), (0, 0, 4))], "pelvis"),  # three bones in a row
    ([(n, p, h, t) for n, p, h, t in rigs.rig_bones("mixamo") if "Leg" not in n and "Foot" not in n
      and "Toe" not in n], "l_hip"),  # no legs
])
def test_unmappable_armatures_get_a_clear_error(bones, missing):
    index = {b[0]: i for i, b in enumerate(bones)}
    rig = bone_map.Rig(names=[b[0] for b in bones], parents=[index[b[1]] if b[1] else -1 for b in bones],
                       heads=np.array([b[2] for b in bones], float), tails=np.array([b[3] for b in bones], float),
                       lateral=np.eye(3)[0])
    mapping = bone_map.auto_map(rig)
    with pytest.raises(BammInputError, match=f"Cannot retarget onto .*no bone found for .*{missing}"):
        bone_map.check_mapping(rig, mapping)


def test_check_mapping_reports_bad_entries():
    rig = rig_of("ue5_mannequin")
    good = rigs.expected("ue5_mannequin")
    with pytest.raises(BammInputError, match="no bone for l_wrist -> hand_x"):
        bone_map.check_mapping(rig, {**good, "l_wrist": "hand_x"})
    with pytest.raises(BammInputError, match="'thigh_l' is mapped to both"):
        bone_map.check_mapping(rig, {**good, "r_hip": "thigh_l"})
    with pytest.raises(BammInputError, match="not SMPL joints"):
        bone_map.check_mapping(rig, {**good, "tail": "root"})
    assert bone_map.check_mapping(rig, {**good, "head": ""}) == {j: b for j, b in good.items() if j != "head"}


def test_presets_round_trip_and_fit(tmp_path):
    builtin = bone_map.builtin_presets()
    assert {"mixamo", "rigify", "ue4_mannequin", "ue5_mannequin", "smpl", "smplx", "bandai_namco"} <= set(builtin)
    mapping = bone_map.load_preset(builtin["mixamo"])
    path = bone_map.save_preset(tmp_path / "sub" / "mine.json", mapping, name="Mine")
    assert json.loads(path.read_text())["name"] == "Mine"
    assert bone_map.load_preset(path) == mapping
    kept, dropped = bone_map.fit_preset(rig_of("ue5_mannequin"), bone_map.load_preset(builtin["smplx"]))
    assert kept == {"pelvis": "pelvis", "head": "head"} and len(dropped) == 20  # the two names both rigs share


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"bones": {}}', "is not a bone-map preset"),
    ('{"format": "bamm-bone-map", "bones": {"tail": "Tail"}}', "bad entries tail"),
])
def test_bad_presets_name_the_file(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(BammInputError, match=message) as info:
        bone_map.load_preset(path)
    assert "bad.json" in str(info.value)
    with pytest.raises(BammInputError, match="Cannot read"):
        bone_map.load_preset(tmp_path / "missing.json")
