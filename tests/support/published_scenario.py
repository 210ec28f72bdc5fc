"""Import the published checkpoints inside stock Blender (a Python holding only the ``bpy`` wheel), as a user does.

    python published_scenario.py <config.json>

Installs the extension zip (``stock_scenario.install_zip``), then through the add-on's operators: refuses each
of cfg["bad"] (checkpoints that would run code, or are not checkpoints) as Import Published Model's BAMM
transformer file; imports cfg["checkpoints"] exactly (float32) and fast (int8); computes the exact model's
tokens for cfg["prompts"] in a subprocess of the same Python with the extension's model core and wheels
(greedy and seeded, official profile); presses Generate, Regenerate Range and Extend with the imported model
active; removes the exact model. Writes a JSON report; imports only the standard library, numpy and bpy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stock_scenario import MODULE, install_zip, keys_of  # noqa: E402

TOKENS = """
import json, sys
import numpy as np
from model_core.decoding.generate import Generator
from model_core.runtime.ort_nets import load_runtime
folder, prompts = sys.argv[1], json.loads(sys.argv[2])
gen = Generator(load_runtime(folder, "cpu", threads=1))
out = {"greedy": [m.tokens.tolist() for m in gen.generate(prompts, temperature=0.0, seed=0, profile="official")],
       "seeded": [m.tokens.tolist() for m in gen.generate(prompts, temperature=1.0, seed=3, profile="official")],
       "embedding": gen.encode_text(prompts).tolist(), "torch_imported": "torch" in sys.modules}
print(json.dumps(out))
"""


def main(argv: list[str]) -> int:
    cfg = json.loads(Path(argv[0]).read_text())
    report: dict = {"steps": {}}
    import bpy

    report["blender"] = bpy.app.version_string
    try:
        run(cfg, report, bpy)
    finally:
        report["imported"] = sorted(m for m in ("torch", "scipy", "onnx") if m in sys.modules)
        Path(cfg["report"]).write_text(json.dumps(report, indent=1))
    return 0


def run(cfg: dict, report: dict, bpy) -> None:
    steps = report["steps"]
    scene = bpy.context.scene

    def step(name, fn):
        start = time.perf_counter()
        try:
            steps[name] = {"ok": True, **(fn() or {}), "seconds": time.perf_counter() - start}
        except Exception as e:  # recorded; the test asserts
            steps[name] = {"ok": False, "error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - start}
        return steps[name]["ok"]

    state = {}

    def install():
        out, state["site"] = install_zip(cfg)
        state["ext"] = out["extension_dir"]
        state["models"] = sys.modules[MODULE + ".bamm_blender.models"]
        state["prefs"] = bpy.context.preferences.addons[MODULE].preferences
        return out

    def import_(name, precision, **override):
        paths = {"t2m_path": cfg["checkpoints"]["t2m"], "res_path": cfg["checkpoints"]["res"],
                 "vq_path": cfg["checkpoints"]["vq"], "clip_path": cfg["checkpoints"]["clip"], **override}
        return sorted(bpy.ops.bamm.import_published(name=name, precision=precision, **paths))

    def models_dir_files():
        root = state["models"].user_models_dir()
        return sorted(str(p.relative_to(root)) for p in root.rglob("*"))

    def refuse():
        out = {}
        for label, path in cfg["bad"].items():
            try:
                import_(f"bad {label}", "FLOAT32", t2m_path=path)
                out[label] = {"error": None}
            except RuntimeError as e:  # the operator's report
                out[label] = {"error": str(e)}
            out[label]["models_dir"] = models_dir_files()
        out["marker_exists"] = os.path.exists(cfg["marker"])
        out["models"] = [item.name for item in state["prefs"].models]
        return out

    def imported(name, precision):
        def fn():
            result = import_(name, precision)
            prefs = state["prefs"]
            item = [m for m in prefs.models if m.name == name][0]
            folder = Path(item.folder)
            return {"result": result, "folder": str(folder), "active": prefs.active_model == item.folder,
                    "active_name": state["models"].active_name(bpy.context), "size_mb": item.size_mb,
                    "written": item.written_by_addon, "source": item.source, "licence": item.licence,
                    "files": sorted(p.name for p in folder.iterdir()),
                    "bytes": sum(p.stat().st_size for p in folder.iterdir()),
                    "under_user_folder": folder.is_relative_to(state["models"].user_models_dir())}
        return fn

    def tokens():
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([state["site"], state["ext"]]), PYTHONNOUSERSITE="1")
        done = subprocess.run([sys.executable, "-c", TOKENS, steps["import_exact"]["folder"],
                               json.dumps(cfg["prompts"])], env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip()[-1500:])
        return json.loads(done.stdout.strip().splitlines()[-1])

    def generate():
        s = scene.bamm
        s.prompt, s.length_mode, s.seed = cfg["prompts"][0], "AUTO", 0
        result = sorted(bpy.ops.bamm.generate())
        state["armature"] = s.target
        return {"result": result, "keys": keys_of(s.target)}

    def regenerate():
        s = scene.bamm
        before = keys_of(state["armature"])
        s.range_source, s.range_start, s.range_end = "MANUAL", int(before["first"]) + 4, int(before["first"]) + 16
        s.edit_prompt = "a person does a cartwheel"
        return {"result": sorted(bpy.ops.bamm.regenerate_range()), "before": before,
                "keys": keys_of(state["armature"])}

    def extend():
        s = scene.bamm
        before = keys_of(state["armature"])
        s.extend_seconds, s.edit_prompt = 1.0, ""
        return {"result": sorted(bpy.ops.bamm.extend(side="AFTER")), "before": before,
                "keys": keys_of(state["armature"])}

    def duplicate():
        try:
            import_("HumanML3D", "INT8")
        except RuntimeError as e:
            return {"error": str(e)}
        return {"error": None}

    def remove():
        prefs = state["prefs"]
        index = [m.name for m in prefs.models].index("HumanML3D exact")
        folder = Path(prefs.models[index].folder)
        result = sorted(bpy.ops.bamm.model_remove(index=index))
        return {"result": result, "folder_exists": folder.exists(), "models": [m.name for m in prefs.models],
                "active_name": state["models"].active_name(bpy.context)}

    if not step("install", install):
        return
    step("refuse", refuse)
    if step("import_exact", imported("HumanML3D exact", "FLOAT32")):
        step("tokens", tokens)
        if step("generate", generate):
            step("regenerate", regenerate)
            step("extend", extend)
    if step("import_fast", imported("HumanML3D", "INT8")):
        step("generate_fast", generate)
        step("duplicate", duplicate)
    step("remove", remove)
    bpy.ops.preferences.addon_disable(module=MODULE)  # stops the worker process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
