"""What an animator does, run inside a Python that holds nothing but the ``bpy`` wheel (stock Blender's stand-in).

    python stock_scenario.py <config.json>

Installs the extension zip with Blender's own installer into ``BLENDER_USER_RESOURCES`` (set by the caller),
enables it, and presses the add-on's operators in order: Generate, warm Generate presses (optional), Regenerate
Range, Extend, Retarget onto a Mixamo-named rig, Export FBX, then re-imports the FBX; then Regenerate Range and
Extend on that Mixamo-named character's own action (its armature as the panel's Armature). Each step's outcome,
wall time (seconds) and key summary go into a JSON report; a failed step records its error and the steps that
need it are skipped. Imports only the standard library, numpy, bpy and ``support.rigs`` (numpy + bpy).

Config (JSON): ``zip``, ``report``, ``fbx`` (paths); ``rigs_parent`` (folder holding ``support/``);
``probe_graph`` (a tiny ONNX graph for the wheel probe, or ""); ``prefs`` ({name: value} set on the add-on's
preferences; empty: defaults); ``seconds`` (first Generate); ``warm_presses`` / ``warm_seconds`` (the warm
presses, then as many generations split into the model job and the writing of keys); ``steps``.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

MODULE = "bl_ext.user_default.bamm"
STEPS = ("install", "probe", "generate", "warm", "regenerate", "extend", "retarget", "export", "reimport",
         "rig_regenerate", "rig_extend")
NEEDS = {"probe": "install", "generate": "install", "warm": "generate", "regenerate": "generate",
         "extend": "generate", "retarget": "generate", "export": "retarget", "reimport": "export",
         "rig_regenerate": "retarget", "rig_extend": "retarget"}
DECLARED_DEPENDENCIES = ("flatbuffers", "packaging", "google", "huggingface_hub", "sympy", "coloredlogs")
PROBE = """
import json, sys
before = set(sys.modules)
import numpy as np, onnxruntime, tokenizers
out = {"onnxruntime": onnxruntime.__version__, "onnxruntime_file": onnxruntime.__file__,
       "tokenizers": tokenizers.__version__, "providers": onnxruntime.get_available_providers()}
if sys.argv[1]:
    session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    out["graph"] = session.run(None, {"x": np.ones((1, 3), np.float32)})[0].tolist()
vocab = {"[UNK]": 0, "walk": 1, "forward": 2}
tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
out["tokens"] = tok.encode("walk forward now").ids
out["imported"] = sorted({m.split(".")[0] for m in set(sys.modules) - before})
print(json.dumps(out))
"""


def fcurves(action) -> list:
    """Every F-curve of ``action``: layered actions (Blender 4.4+) or the legacy list (4.2/4.3)."""
    if len(getattr(action, "layers", ())):
        return [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags
                for fc in bag.fcurves]
    return list(action.fcurves)


def keys_of(obj) -> dict:
    """Key summary of the object's action: name, F-curves, bones keyed, first/last key frame, finiteness."""
    import numpy as np

    action = obj.animation_data.action if obj is not None and obj.animation_data else None
    if action is None:
        return {"object": getattr(obj, "name", None), "action": None}
    frames, finite, bones = [], True, set()
    for fc in fcurves(action):
        co = np.zeros(2 * len(fc.keyframe_points), np.float64)
        fc.keyframe_points.foreach_get("co", co)
        frames.append(co[0::2])
        finite &= bool(np.isfinite(co).all())
        if fc.data_path.startswith('pose.bones["'):
            bones.add(fc.data_path.split('"')[1])
    allf = np.concatenate(frames) if frames else np.zeros(0)
    return {"object": obj.name, "action": action.name, "fcurves": len(frames), "bones": len(bones),
            "first": float(allf.min()) if len(allf) else None, "last": float(allf.max()) if len(allf) else None,
            "finite": finite, "keys_per_curve": sorted({len(f) for f in frames})}


def keys_digest(obj, keep=lambda frames: frames == frames) -> str:
    """A hash of every attribute of every key of the object's action whose frame passes ``keep``, F-curve by
    F-curve (data path, index): equal digests, bit-identical keys."""
    import hashlib

    import numpy as np

    digest = hashlib.sha1()
    for fc in sorted(fcurves(obj.animation_data.action), key=lambda f: (f.data_path, f.array_index)):
        points = fc.keyframe_points
        co = np.zeros(2 * len(points), np.float64)
        points.foreach_get("co", co)
        chosen = keep(co[0::2])
        digest.update(f"{fc.data_path}[{fc.array_index}]:{int(chosen.sum())};".encode())
        for attr, size, dtype in (("co", 2, np.float64), ("handle_left", 2, np.float64),
                                  ("handle_right", 2, np.float64), ("interpolation", 1, np.int32),
                                  ("handle_left_type", 1, np.int32), ("handle_right_type", 1, np.int32)):
            values = np.zeros(size * len(points), dtype)
            points.foreach_get(attr, values)
            digest.update(values.reshape(len(points), size)[chosen].tobytes())
    return digest.hexdigest()


def install_zip(cfg: dict) -> tuple[dict, str]:
    """Blender's own installer on cfg["zip"] (enabled, cfg["prefs"] set): (what the install step reports, the
    site-packages folder the wheels went to)."""
    import bpy

    result = bpy.ops.extensions.package_install_files(filepath=cfg["zip"], repo="user_default",
                                                      enable_on_install=True)
    root = Path(bpy.utils.user_resource("EXTENSIONS"))
    site = glob.glob(str(root / ".local" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
                         / "site-packages"))
    site = site[0] if site else ""
    installed = root / "user_default" / "bamm"
    prefs = bpy.context.preferences.addons[MODULE].preferences if MODULE in bpy.context.preferences.addons \
        else None
    for name, value in cfg.get("prefs", {}).items():
        setattr(prefs, name, value)
    return {"result": sorted(result), "enabled": MODULE in bpy.context.preferences.addons,
            "user_extensions": str(root), "extension_dir": str(installed),
            "extension_files": sorted(p.name for p in installed.iterdir()) if installed.is_dir() else [],
            "site_packages": site, "site_files": sorted(os.listdir(site)) if site else [],
            "operators": [hasattr(bpy.ops.bamm, op) for op in ("generate", "regenerate_range", "extend",
                                                                "retarget", "export")]}, site


def run(cfg: dict, report: dict) -> None:
    import bpy

    scene = bpy.context.scene
    steps, done = report["steps"], set()
    state: dict = {}

    def step(name, fn):
        if name not in cfg.get("steps", STEPS):
            return
        need = NEEDS.get(name)
        if need and need in cfg.get("steps", STEPS) and need not in done:
            steps[name] = {"ok": False, "skipped": f"needs {need}"}
            return
        start = time.perf_counter()
        try:
            out = fn() or {}
            steps[name] = {"ok": True, "seconds": time.perf_counter() - start, **out}
            done.add(name)
        except Exception as e:  # recorded in the report; the caller asserts
            steps[name] = {"ok": False, "seconds": time.perf_counter() - start, "error": f"{type(e).__name__}: {e}"}

    def install():
        out, state["site"] = install_zip(cfg)
        return out

    def probe():
        env = dict(os.environ, PYTHONPATH=state["site"], PYTHONNOUSERSITE="1")
        done_ = subprocess.run([sys.executable, "-c", PROBE, cfg.get("probe_graph", "")], env=env,
                               capture_output=True, text=True, timeout=120)
        if done_.returncode != 0:
            raise RuntimeError(done_.stderr.strip()[-1500:])
        out = json.loads(done_.stdout.strip().splitlines()[-1])
        out["declared_dependencies_imported"] = [m for m in DECLARED_DEPENDENCIES if m in out["imported"]]
        return out

    def press(operator, **kwargs):
        start = time.perf_counter()
        result = operator(**kwargs)  # a reported error raises RuntimeError in the bpy module
        return sorted(result), time.perf_counter() - start

    def generate():
        s = scene.bamm
        s.prompt, s.length_mode, s.seconds = "a person walks forward", "SECONDS", float(cfg.get("seconds", 2.0))
        result, seconds = press(bpy.ops.bamm.generate)
        state["armature"] = s.target
        return {"result": result, "press_seconds": seconds, "keys": keys_of(s.target),
                "fps": scene.render.fps / scene.render.fps_base, "frame_start": scene.frame_start}

    def warm():
        s = scene.bamm
        s.length_mode, s.seconds = "SECONDS", float(cfg.get("warm_seconds", 9.8))
        times, split = [], []
        for k in range(int(cfg.get("warm_presses", 0))):
            s.seed = k + 1
            result, seconds = press(bpy.ops.bamm.generate)
            times.append(seconds)
        headless = sys.modules[MODULE + ".bamm_blender.headless"]
        for k in range(int(cfg.get("warm_presses", 0))):  # the same work split: model job, then keys
            start = time.perf_counter()
            task = headless.start_generate(bpy.context, prompt=s.prompt, seconds=s.seconds, seed=100 + k)
            task.job.wait(600)
            waited = time.perf_counter()
            headless.finish(bpy.context, task)
            split.append([waited - start, time.perf_counter() - waited])
        state["armature"] = s.target
        return {"press_seconds": times, "job_and_keys_seconds": split, "keys": keys_of(s.target)}

    def regenerate():
        s = scene.bamm
        before = keys_of(state["armature"])
        first = int(before["first"])
        s.range_source, s.range_start, s.range_end = "MANUAL", first + 8, first + 24
        s.edit_prompt = "a person jumps"
        result, seconds = press(bpy.ops.bamm.regenerate_range)
        return {"result": result, "press_seconds": seconds, "range": [first + 8, first + 24], "before": before,
                "keys": keys_of(state["armature"])}

    def extend():
        s = scene.bamm
        before = keys_of(state["armature"])
        s.extend_seconds, s.edit_prompt = 1.0, ""
        result, seconds = press(bpy.ops.bamm.extend, side="AFTER")
        return {"result": result, "press_seconds": seconds, "before": before, "keys": keys_of(state["armature"])}

    def retarget():
        sys.path.insert(0, cfg["rigs_parent"])
        from support.rigs import build_rig

        rig = build_rig(bpy.context, "mixamo", name="Character")
        scene.bamm_retarget.target = rig
        state["rig"] = rig
        result, seconds = press(bpy.ops.bamm.retarget)
        return {"result": result, "press_seconds": seconds, "source": keys_of(state["armature"]),
                "keys": keys_of(rig)}

    def export():
        result, seconds = press(bpy.ops.bamm.export, filepath=cfg["fbx"])
        return {"result": result, "press_seconds": seconds, "bytes": os.path.getsize(cfg["fbx"])}

    def reimport():
        before = set(bpy.data.objects)
        result = bpy.ops.import_scene.fbx(filepath=cfg["fbx"], anim_offset=0.0)
        new = [o for o in bpy.data.objects if o not in before and o.type == "ARMATURE"]
        return {"result": sorted(result), "armatures": [o.name for o in new],
                "keys": keys_of(new[0]) if new else None,
                "bone_names": sorted(b.name for b in new[0].data.bones)[:80] if new else []}

    def rig_regenerate():  # the animator's own character: its action edited in place, the rest kept
        s, rig = scene.bamm, state["rig"]
        before = keys_of(rig)
        first, last = int(before["first"]) + 10, int(before["first"]) + 30
        outside = lambda f: (f < first) | (f > last)  # noqa: E731
        inside = lambda f: (f >= first) & (f <= last)  # noqa: E731
        kept, was = keys_digest(rig, outside), keys_digest(rig, inside)
        s.target, s.range_source, s.range_start, s.range_end = rig, "MANUAL", first, last
        s.edit_prompt = "a person waves with the right hand above the head"
        result, seconds = press(bpy.ops.bamm.regenerate_range)
        return {"result": result, "press_seconds": seconds, "range": [first, last], "before": before,
                "keys": keys_of(rig), "outside_before": kept, "outside_after": keys_digest(rig, outside),
                "inside_changed": keys_digest(rig, inside) != was}

    def rig_extend():
        s, rig = scene.bamm, state["rig"]
        before = keys_of(rig)
        old = lambda f: (f >= before["first"]) & (f <= before["last"])  # noqa: E731
        kept = keys_digest(rig, old)
        s.target, s.extend_seconds, s.edit_prompt = rig, 1.0, ""
        result, seconds = press(bpy.ops.bamm.extend, side="AFTER")
        return {"result": result, "press_seconds": seconds, "before": before, "keys": keys_of(rig),
                "old_before": kept, "old_after": keys_digest(rig, old),
                "fps": scene.render.fps / scene.render.fps_base}

    for name, fn in (("install", install), ("probe", probe), ("generate", generate), ("warm", warm),
                     ("regenerate", regenerate), ("extend", extend), ("retarget", retarget), ("export", export),
                     ("reimport", reimport), ("rig_regenerate", rig_regenerate), ("rig_extend", rig_extend)):
        step(name, fn)
    if MODULE in bpy.context.preferences.addons:
        bpy.ops.preferences.addon_disable(module=MODULE)  # stops the worker process


def main(argv: list[str]) -> int:
    cfg = json.loads(Path(argv[0]).read_text())
    report: dict = {"steps": {}}
    start = time.perf_counter()
    import bpy

    report["import_bpy_seconds"] = time.perf_counter() - start
    report["blender"], report["python"] = bpy.app.version_string, sys.version.split()[0]
    try:
        run(cfg, report)
    finally:
        report["imported"] = sorted(m for m in ("torch", "scipy", "onnxruntime", "tokenizers") if m in sys.modules)
        report["findable"] = sorted(m for m in ("torch", "scipy") if importlib.util.find_spec(m) is not None)
        Path(cfg["report"]).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
