"""Generated motions kept on the scene (the panel's result list) and the source data stored on actions.

Each result is its own action, kept alive by the list's pointer to it (so it survives saving while it is not
assigned). Selecting a result previews it (assigns it to its armature); Apply keeps the selected one and
deletes the others that nothing else uses; Clear deletes every result action that nothing else uses.

A baked action also stores the model joints it was made from (custom properties): Regenerate / Extend use
that exact copy while the keys are unchanged (same fingerprint), and otherwise read the joints back from the
keys by forward kinematics, so an animator's key edits are what the model sees.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import bake, preferences
from .core import MODEL_FPS
from .errors import BammInputError

PROMPT_KEY = "bamm_prompt"
JOINTS_KEY = "bamm_joints"
ORIGIN_KEY = "bamm_origin"  # scene frame of model frame 0 of the stored joints
FPS_KEY = "bamm_scene_fps"
FINGERPRINT_KEY = "bamm_keys"


def user_dir(name: str) -> str | None:
    """A folder for this extension's user data (``bpy.utils.extension_path_user``); None when the package
    is not running as an extension (then the caller picks a temporary folder)."""
    try:
        return bpy.utils.extension_path_user(preferences.ADDON_ID, path=name, create=True)
    except (ValueError, KeyError, RuntimeError, TypeError):
        return None


def store_source(obj, action, joints: np.ndarray, origin: float, scene, prompt: str | None) -> None:
    action[JOINTS_KEY] = np.asarray(joints, dtype=np.float32).ravel().tolist()
    action[ORIGIN_KEY] = float(origin)
    action[FPS_KEY] = bake.scene_fps(scene)
    action[PROMPT_KEY] = prompt or ""
    action[FINGERPRINT_KEY] = bake.fingerprint(obj, action)


def source_joints(obj, action, scene) -> tuple[np.ndarray, int, int]:
    """(20-fps model joints from the first key, first key frame, last key frame) of an action."""
    first, last = bake.key_range(obj, action)
    stored = action.get(JOINTS_KEY)
    if (
        stored is not None
        and action.get(FINGERPRINT_KEY) == bake.fingerprint(obj, action)
        and action.get(ORIGIN_KEY) == float(first)
        and action.get(FPS_KEY) == bake.scene_fps(scene)
    ):
        return np.asarray(stored, dtype=np.float32).reshape(-1, 22, 3), first, last
    joints = bake.read_model_joints(obj, action, scene).astype(np.float32)
    if len(joints) < 2:
        raise BammInputError(f"Action '{action.name}' is shorter than {2 / MODEL_FPS:.1f} s")
    return joints, first, last


def add(scene, obj, actions, *, kind: str, seed: int) -> None:
    settings = scene.bamm
    for action in actions:
        item = settings.results.add()
        item.name, item.action, item.target = action.name, action, obj
        item.prompt, item.kind, item.seed = action.get(PROMPT_KEY, ""), kind, seed
        first, last = bake.key_range(obj, action)
        item.frames = last - first + 1
    settings.results_index = len(settings.results) - len(actions)  # previews it (update callback)


def preview(context, index: int, *, scene=None) -> None:
    """Assign result ``index`` of ``scene`` (default: the context's) to its armature and fit the scene's frame
    range to it (if that option is on)."""
    scene = scene or context.scene
    settings = scene.bamm
    item = settings.results[index]
    if item.action is None or item.target is None:
        return
    bake.assign_action(item.target, item.action)
    if settings.set_scene_range:
        scene.frame_start, scene.frame_end = bake.key_range(item.target, item.action)


def _clear_list(settings, keep=None) -> None:
    """Empty the list, then delete its actions that nothing else uses (the list's pointers were users)."""
    names = [item.action.name for item in settings.results if item.action is not None]
    settings.results.clear()
    settings["results_index"] = -1  # set without the preview callback
    for name in names:
        action = bpy.data.actions.get(name)
        if action is not None and action != keep and action.users == 0:
            bpy.data.actions.remove(action)


def apply(context, index: int) -> bpy.types.Action:
    """Keep result ``index`` on its armature; delete the other unused result actions; empty the list."""
    settings = context.scene.bamm
    action = settings.results[index].action
    preview(context, index)
    _clear_list(settings, keep=action)
    return action


def clear(context) -> None:
    """Delete every result action nothing else uses, and empty the list."""
    _clear_list(context.scene.bamm)
