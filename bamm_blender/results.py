"""Generated motions kept on the scene (the panel's result list) and the source data stored on actions.

Each result is its own action, kept alive by the list's pointer to it (so it survives saving while it is not
assigned). Selecting a result previews it (assigns it to its armature); Apply keeps the selected one and
deletes the others that nothing else uses; Clear deletes every result action that nothing else uses.

A baked action also stores the model joints it was made from and their tokens (custom properties):
Regenerate / Extend send that exact copy, tokens included (so the model does not encode the motion again),
while the keys are unchanged (same fingerprint), and otherwise read the joints back from the keys by forward
kinematics, so an animator's key edits are what the model sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from . import bake, preferences, vocab
from .core import MODEL_FPS
from .errors import BammInputError

FRAMES_PER_TOKEN = 4  # the tokenizer's frames per token

PROMPT_KEY = "bamm_prompt"
JOINTS_KEY = "bamm_joints"
ORIGIN_KEY = "bamm_origin"  # scene frame of model frame 0 of the stored joints
FPS_KEY = "bamm_scene_fps"
FINGERPRINT_KEY = "bamm_keys"
TOKENS_KEY = "bamm_tokens"  # the model's tokens of the stored joints, flattened (N * Q ints)
TOKEN_LAYERS_KEY = "bamm_token_layers"  # Q
TOKENS_MODEL_KEY = "bamm_token_model"  # which model's codebook the tokens index (``headless.model_key``)
_TOKEN_KEYS = (TOKENS_KEY, TOKEN_LAYERS_KEY, TOKENS_MODEL_KEY)


@dataclass
class Source:
    """What an edit starts from: ``joints`` (T, 22, 3) float32 at 20 fps from the first key; ``tokens``
    (ceil(T / 4), Q) int64 of exactly these joints, or None (the model encodes the joints); the action's
    first and last key frame (scene frames)."""

    joints: np.ndarray
    tokens: np.ndarray | None
    first: int
    last: int


def user_dir(name: str) -> str | None:
    """A folder for this extension's user data (``bpy.utils.extension_path_user``); None when the package
    is not running as an extension (then the caller picks a temporary folder)."""
    try:
        return bpy.utils.extension_path_user(preferences.ADDON_ID, path=name, create=True)
    except (ValueError, KeyError, RuntimeError, TypeError):
        return None


def store_source(obj, action, joints: np.ndarray, origin: float, scene, prompt: str | None, *,
                 tokens: np.ndarray | None = None, model: str = "") -> None:
    """Keep the model output an action was baked from: joints, their tokens (when the back end returned them,
    with ``model`` naming the codebook) and the fingerprint of the keys as baked."""
    action[JOINTS_KEY] = np.asarray(joints, dtype=np.float32).ravel().tolist()
    action[ORIGIN_KEY] = float(origin)
    action[FPS_KEY] = bake.scene_fps(scene)
    action[PROMPT_KEY] = prompt or ""
    for key in _TOKEN_KEYS:  # a spliced action may carry its source's tokens: never keep stale ones
        if key in action:
            del action[key]
    if tokens is not None:
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim == 2 and tokens.shape[0] == -(-len(joints) // FRAMES_PER_TOKEN) and tokens.shape[1] > 0:
            action[TOKENS_KEY] = tokens.ravel().tolist()
            action[TOKEN_LAYERS_KEY] = int(tokens.shape[1])
            action[TOKENS_MODEL_KEY] = model
    action[FINGERPRINT_KEY] = bake.fingerprint(obj, action)


def _stored_tokens(action, frames: int, model: str) -> np.ndarray | None:
    stored, layers = action.get(TOKENS_KEY), action.get(TOKEN_LAYERS_KEY)
    if stored is None or not layers or action.get(TOKENS_MODEL_KEY) != model:
        return None
    tokens = np.asarray(stored, dtype=np.int64)
    if tokens.size != -(-frames // FRAMES_PER_TOKEN) * int(layers):
        return None
    return tokens.reshape(-1, int(layers))


def source(obj, action, scene, *, model: str = "") -> Source:
    """The motion an edit of ``action`` starts from. While the keys are exactly as baked (same fingerprint,
    same first frame and scene fps) that is the stored model output, with its tokens when they index
    ``model``'s codebook; otherwise the joints read back from the keys by forward kinematics (no tokens)."""
    first, last = bake.key_range(obj, action)
    stored = action.get(JOINTS_KEY)
    if (
        stored is not None
        and action.get(FINGERPRINT_KEY) == bake.fingerprint(obj, action)
        and action.get(ORIGIN_KEY) == float(first)
        and action.get(FPS_KEY) == bake.scene_fps(scene)
    ):
        joints = np.asarray(stored, dtype=np.float32).reshape(-1, 22, 3)
        return Source(joints, _stored_tokens(action, len(joints), model), first, last)
    joints = bake.read_model_joints(obj, action, scene).astype(np.float32)
    if len(joints) < 2:
        raise BammInputError(f"Action '{action.name}' is shorter than {2 / MODEL_FPS:.1f} s")
    return Source(joints, None, first, last)


def source_joints(obj, action, scene) -> tuple[np.ndarray, int, int]:
    """(20-fps model joints from the first key, first key frame, last key frame) of an action."""
    found = source(obj, action, scene)
    return found.joints, found.first, found.last


def add(scene, obj, actions, *, kind: str, seed: int) -> None:
    settings = scene.bamm
    for action in actions:
        item = settings.results.add()
        item.name, item.action, item.target = action.name, action, obj
        item.prompt, item.kind, item.seed = action.get(PROMPT_KEY, ""), kind, seed
        item.vocab_note = vocab.line(item.prompt)  # made from a prompt outside the model's vocabulary
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
