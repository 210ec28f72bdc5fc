"""The work of the Retarget & Export section on the scene's settings (``scene.bamm_retarget``): the editable
bone map (SMPL joint -> character bone) and its presets, Retarget and Export. The operators in ``operators``
call these functions; scripts and tests call them directly.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from . import armature, bone_map, export, retarget
from .errors import BammInputError


def settings(context):
    return context.scene.bamm_retarget


def source_of(context):
    """The motion's armature: the Source field, else the BAMM panel's armature, else the BAMM Skeleton."""
    s = settings(context)
    panel = getattr(context.scene, "bamm", None)
    for obj in (s.source, getattr(panel, "target", None), bpy.data.objects.get(armature.ARMATURE_NAME)):
        if obj is not None and obj.type == "ARMATURE" and obj != s.target and (obj == s.source
                                                                            or armature.is_skeleton(obj)):
            return armature.check_armature(obj)  # the panel's Armature may be a character: not a source
    raise BammInputError("No source motion: generate a motion first or pick the BAMM Skeleton as Source")


def _target(context):
    target = settings(context).target
    if target is None:
        raise BammInputError("Pick the character's armature (Character) first")
    return target


def set_bone_map(context, mapping: dict[str, str]) -> None:
    s = settings(context)
    s.bone_map.clear()
    for joint in bone_map.JOINTS:
        item = s.bone_map.add()
        item.joint, item.bone = joint, mapping.get(joint, "")
    s.bone_map_target = s.target.name if s.target else ""


def mapping_of(context) -> dict[str, str]:
    """The panel's bone map (auto-filled first when it is empty or was made for another armature)."""
    s = settings(context)
    if not len(s.bone_map) or s.bone_map_target != getattr(s.target, "name", ""):
        fill_bone_map(context)
    return {item.joint: item.bone for item in s.bone_map if item.bone}


def fill_bone_map(context) -> list[str]:
    """Auto-map the Character; returns the joints left without a bone."""
    mapping = bone_map.auto_map(bone_map.Rig.from_armature(_target(context)))
    set_bone_map(context, mapping)
    return [j for j in bone_map.JOINTS if j not in mapping]


def load_bone_map(context, path) -> list[str]:
    """Load a preset file onto the Character; returns the joints whose bone the character lacks."""
    kept, dropped = bone_map.fit_preset(bone_map.Rig.from_armature(_target(context)), bone_map.load_preset(path))
    set_bone_map(context, kept)
    return dropped


def save_bone_map(context, path) -> Path:
    return bone_map.save_preset(path, mapping_of(context), name=Path(path).stem)


def run_retarget(context):
    """Retarget the source motion onto the Character with the panel's map and options (a new action)."""
    s = settings(context)
    options = retarget.RetargetOptions(in_place=s.in_place, keep_root=s.keep_root, loop=s.loop,
                                       foot_lock=s.foot_lock, partial=s.partial)
    return retarget.retarget(context, source_of(context), _target(context), mapping_of(context), options=options)


def run_export(context, filepath, fmt: str | None = None) -> Path:
    """Export the Character when it has an action, else the source armature."""
    s = settings(context)
    obj = s.target if s.target is not None and s.target.animation_data and s.target.animation_data.action \
        else source_of(context)
    return export.export_armature(context, obj, filepath, fmt=fmt or s.export_format)


def load_builtin_bone_map(context, name: str) -> tuple[Path, list[str]]:
    """Load the built-in preset ``name``; returns its path and the joints whose bone the character lacks."""
    path = bone_map.builtin_presets().get(name)
    if path is None:
        raise BammInputError(f"No built-in bone map '{name}' (built-in: {', '.join(bone_map.builtin_presets())})")
    return path, load_bone_map(context, path)
