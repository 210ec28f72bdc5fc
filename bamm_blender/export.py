"""Export an armature with its animation to FBX, BVH or glTF binary (GLB), with settings that round-trip:
every frame keyed, no simplification, the frame range of the armature's action, the scene's frame rate.

Importing the files back: FBX with ``anim_offset=0`` (Blender's importer otherwise puts every key one frame
late); BVH with ``axis_forward="Y", axis_up="Z"`` (Blender's exporter writes the armature's own space and
ignores the object transform); glTF after setting the scene's frame rate (times are stored in seconds).

Command line (the ``bamm export`` command)::

    python -m bamm_blender joints.npy --format fbx|bvh|glb --out FILE [--overwrite]   (or: bamm export …)
        [--target RIG.blend|RIG.fbx --armature NAME --bone-map MAP.json --partial] [--in-place] [--keep-root]
        [--loop] [--foot-lock]

reads 20-fps joints ``(T, 22, 3)``, bakes them onto a BAMM Skeleton, retargets onto the target armature when
one is given (the BAMM Skeleton is then removed), exports, prints the written path. Bad input: a message on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

import bpy
import numpy as np

from . import armature, bake, bone_map, retarget
from .core import MODEL_FPS, model_module
from .errors import BammError, BammInputError

outputs = model_module(".serving.outputs")

FORMATS = {"fbx": ".fbx", "bvh": ".bvh", "glb": ".glb"}
TARGET_SUFFIXES = (".blend", ".fbx")


def fbx_settings() -> dict:
    """``export_scene.fbx`` keywords: bake every frame of the active action only, no key reduction."""
    return dict(use_selection=True, object_types={"ARMATURE", "MESH"}, add_leaf_bones=False, bake_anim=True,
                bake_anim_use_all_bones=True, bake_anim_use_nla_strips=False, bake_anim_use_all_actions=False,
                bake_anim_force_startend_keying=True, bake_anim_step=1.0, bake_anim_simplify_factor=0.0)


def gltf_settings() -> dict:
    """``export_scene.gltf`` keywords: GLB, the active action only, sampled on every frame, no optimisation."""
    return dict(export_format="GLB", use_selection=True, export_animations=True, export_animation_mode="ACTIVE_ACTIONS",
                export_frame_range=True, export_frame_step=1, export_force_sampling=True,
                export_optimize_animation_size=False, export_anim_slide_to_zero=False, export_bake_animation=False)


def _format_of(filepath: Path, fmt: str | None) -> str:
    fmt = (fmt or filepath.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise BammInputError(f"Unknown export format '{fmt or filepath.name}': use one of {', '.join(FORMATS)}")
    return fmt


def export_armature(context, obj, filepath, *, fmt: str | None = None) -> Path:
    """Write ``obj`` (an armature with an action; its child meshes too for FBX/GLB) to ``filepath``.

    The frame range is the action's keyed range; the scene's range, frame, selection and active object are
    put back afterwards. Returns the path written (the format's extension is added when missing)."""
    if obj is None or obj.type != "ARMATURE":
        raise BammInputError(f"Export needs an armature, got '{getattr(obj, 'name', obj)}'")
    action = obj.animation_data.action if obj.animation_data else None
    if action is None:
        raise BammInputError(f"Armature '{obj.name}' has no action to export: generate or retarget a motion first")
    filepath = Path(bpy.path.abspath(str(filepath)))
    fmt = _format_of(filepath, fmt)
    if filepath.suffix.lower() != FORMATS[fmt]:
        filepath = filepath.with_name(filepath.name + FORMATS[fmt])
    if not filepath.parent.is_dir():
        raise BammInputError(f"Cannot export to {filepath}: folder {filepath.parent} does not exist")
    first, last = bake.key_range(obj, action)
    scene, view_layer = context.scene, context.view_layer
    saved = (scene.frame_start, scene.frame_end, scene.frame_current, view_layer.objects.active,
             [o for o in view_layer.objects if o.select_get()])
    hidden = obj.hide_get()
    try:
        obj.hide_set(False)
        for other in saved[4]:
            other.select_set(False)
        for item in [obj] + [c for c in obj.children if c.type == "MESH" and c.name in view_layer.objects]:
            item.select_set(True)
        view_layer.objects.active = obj
        scene.frame_start, scene.frame_end = first, last
        if fmt == "fbx":
            result = bpy.ops.export_scene.fbx(filepath=str(filepath), **fbx_settings())
        elif fmt == "bvh":
            result = bpy.ops.export_anim.bvh(filepath=str(filepath), frame_start=first, frame_end=last,
                                             rotate_mode="NATIVE", root_transform_only=False)
        else:
            result = bpy.ops.export_scene.gltf(filepath=str(filepath), **gltf_settings())
    finally:
        scene.frame_start, scene.frame_end = saved[0], saved[1]
        scene.frame_set(saved[2])
        for item in view_layer.objects:
            item.select_set(item in saved[4])
        view_layer.objects.active = saved[3]
        obj.hide_set(hidden)
    if "FINISHED" not in result or not filepath.is_file():
        raise BammError(f"Blender's {fmt.upper()} exporter did not write {filepath}")
    return filepath


# ------------------------------------------------------------------------------------------ command line
def load_joints(path) -> np.ndarray:
    """Joints ``(T, 22, 3)`` float32 from a .npy file, or a BammInputError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise BammInputError(f"Joints file {path} does not exist")
    try:
        joints = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise BammInputError(f"{path} is not a .npy array: {exc}") from exc
    if joints.ndim != 3 or joints.shape[1:] != (armature.skeleton.NUM_JOINTS, 3) or len(joints) < 2:
        raise BammInputError(f"{path}: joints must have shape (T >= 2, 22, 3) (20-fps SMPL-22 positions in "
                             f"metres), got {joints.shape}")
    if not np.isfinite(joints).all():
        raise BammInputError(f"{path}: joints contain NaN or infinite values")
    return joints.astype(np.float32)


BLEND_MAGIC = (b"BLENDER", b"\x1f\x8b", b"\x28\xb5\x2f\xfd")  # plain, gzip- or zstd-compressed .blend


def _looks_like(suffix: str, head: bytes) -> bool:
    """Whether a file's first bytes fit its suffix (binary FBX header, or ASCII FBX naming itself; .blend)."""
    if suffix == ".blend":
        return head.startswith(BLEND_MAGIC)
    return head.startswith(b"Kaydara FBX Binary") or (b"FBX" in head and b"\x00" not in head)


def load_target(context, path, name: str | None):
    """Open a .blend (replaces the open file) or import an .fbx into an empty scene; return its armature."""
    path = Path(path)
    if path.suffix.lower() not in TARGET_SUFFIXES:
        raise BammInputError(f"Target {path} must be a .blend or .fbx file")
    if not path.is_file():
        raise BammInputError(f"Target file {path} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if not _looks_like(path.suffix.lower(), head):
        raise BammInputError(f"Target {path} is not a {path.suffix[1:].upper()} file (its header does not match)")
    try:
        if path.suffix.lower() == ".blend":
            bpy.ops.wm.open_mainfile(filepath=str(path))
        else:
            bpy.ops.wm.read_factory_settings(use_empty=True)
            bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = int(MODEL_FPS), 1.0
            bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
    except (RuntimeError, ValueError, TypeError, AttributeError, KeyError, IndexError, OSError, EOFError) as exc:
        reason = " ".join(str(exc).split()).removeprefix("Error: ")[:200]
        raise BammInputError(f"Target {path} cannot be read as a {path.suffix[1:].upper()} file ({reason})") from None
    rigs = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
    if name:
        match = [o for o in rigs if o.name == name]
        if not match:
            names = ", ".join(o.name for o in rigs) or "none"
            raise BammInputError(f"{path} has no armature '{name}' (armatures: {names})")
        return match[0]
    if len(rigs) != 1:
        raise BammInputError(f"{path} has {len(rigs)} armatures ({', '.join(o.name for o in rigs) or 'none'}): "
                             "name one with --armature")
    return rigs[0]


def export_joints(joints: np.ndarray, out, *, fmt: str | None = None, target_file=None, armature_name=None,
                  bone_map_file=None, overwrite: bool = False,
                  options: retarget.RetargetOptions = retarget.RetargetOptions()) -> Path:
    """The command line's work: joints -> BAMM Skeleton -> (target) -> file. Returns the written path.
    ``bone_map_file``: a bone-map preset (.json) for the target (None: found from its bone names / chains).
    An existing ``out`` is refused unless ``overwrite``; the file is written under a temporary name and renamed
    into place, so a failed export leaves no half file (and the old one, if any)."""
    out = Path(out)
    fmt = _format_of(out, fmt)
    if out.suffix.lower() != FORMATS[fmt]:  # as export_armature names it
        out = out.with_name(out.name + FORMATS[fmt])
    if not out.resolve().parent.is_dir():
        raise BammInputError(f"Cannot export to {out}: folder {out.resolve().parent} does not exist")
    if os.path.lexists(out) and (not overwrite or out.is_dir()):
        raise BammInputError(f"{out} already exists: pass --overwrite to replace it, or choose another --out"
                             if not out.is_dir() else f"{out} is a folder: name the file to write")
    if bone_map_file is not None and target_file is None:
        raise BammInputError("--bone-map needs --target (the character the map is for)")
    preset = bone_map.load_preset(bone_map_file) if bone_map_file is not None else None
    mapping = None
    if target_file is not None:
        target = load_target(bpy.context, target_file, armature_name)
        if preset is not None:
            mapping, dropped = bone_map.fit_preset(bone_map.Rig.from_armature(target), preset)
            if dropped:
                raise BammInputError(f"Bone map {bone_map_file}: armature '{target.name}' has no bone "
                                     + ", ".join(f"'{preset[j]}' ({j})" for j in dropped))
    else:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = int(MODEL_FPS), 1.0
        target = None
    context = bpy.context
    if context.collection is None or context.view_layer is None:
        raise BammInputError("The target file has no active scene collection to add the BAMM Skeleton to")
    source = armature.build_armature(context)
    motion = bake.bake_joints(source, joints, scene=context.scene, first_frame=1, name="BAMM motion")
    bake.assign_action(source, motion)
    if target is not None:
        retarget.retarget(context, source, target, mapping, options=options)
        data = source.data
        bpy.data.objects.remove(source)
        bpy.data.armatures.remove(data)
        bpy.data.actions.remove(motion)
        return _write(context, target, out, fmt)
    if options.foot_lock or options.loop or options.in_place or options.keep_root:
        frames, pose = retarget.source_motion(source, context.scene, options)
        if options.keep_root:
            pose.root[:] = armature.rest_joints_of(source)[0]
        action = bake.new_action(source, "BAMM motion", int(frames[0]), *bake.to_bone_space(source, pose))
        bake.assign_action(source, action)
        bpy.data.actions.remove(motion)
    return _write(context, source, out, fmt)


def _write(context, obj, out: Path, fmt: str) -> Path:
    """``export_armature`` into a temporary file next to ``out``, renamed into place when complete."""
    def writer(tmp) -> None:
        export_armature(context, obj, tmp, fmt=fmt)

    try:
        return outputs.write(out, writer)
    except outputs.InputError as e:
        raise BammInputError(str(e)) from None
    except OSError as e:
        raise BammError(f"Cannot write {out}: {e.strerror or e}") from None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bamm export", description="Bake SMPL-22 joints onto an armature and "
                                     "export FBX, BVH or GLB (optionally retargeted onto your character).")
    parser.add_argument("joints", help="joints .npy (T, 22, 3), metres, Y-up, 20 fps")
    parser.add_argument("--format", choices=sorted(FORMATS), help="file format (default: from --out)")
    parser.add_argument("--out", required=True, help="file to write")
    parser.add_argument("--target", help="character to retarget onto: a .blend or .fbx file")
    parser.add_argument("--armature", help="armature object in --target (needed when it has several)")
    parser.add_argument("--bone-map", help="bone-map preset (.json: SMPL joint -> bone of --target), for rigs whose "
                        "bones the automatic map does not find")
    parser.add_argument("--partial", action="store_true",
                        help="retarget although the map has no bone for an arm joint (it keeps its rest pose)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--in-place", action="store_true", help="remove the root's horizontal motion")
    parser.add_argument("--keep-root", action="store_true", help="no root translation keys (rotations only)")
    parser.add_argument("--loop", action="store_true", help="make the last pose match the first (root-relative)")
    parser.add_argument("--foot-lock", action="store_true", help="pin the feet while they touch the floor")
    args = parser.parse_args(argv)
    if args.armature and not args.target:
        parser.error("--armature needs --target")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    options = retarget.RetargetOptions(in_place=args.in_place, keep_root=args.keep_root, loop=args.loop,
                                       foot_lock=args.foot_lock, partial=args.partial)
    try:
        joints = load_joints(args.joints)
        with _stdout_to_stderr():  # Blender and its exporters log on stdout: keep it for the path alone
            path = export_joints(joints, args.out, fmt=args.format, target_file=args.target,
                                 armature_name=args.armature, bone_map_file=args.bone_map,
                                 overwrite=args.overwrite, options=options)
    except (BammError, ValueError) as exc:  # ValueError: joints the bone solver cannot use (degenerate)
        print(f"bamm export: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(path)
    return 0


@contextlib.contextmanager
def _stdout_to_stderr():
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


if __name__ == "__main__":
    sys.exit(main())
