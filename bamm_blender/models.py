"""The models the add-on can run: the shipped one (the zip's ``runtime/``) and any number of added runtime
folders (published checkpoints imported with Import Published Model, or a folder written by
``bamm export-runtime`` / ``bamm import-official --runtime``), one of them active.

The list lives in the add-on preferences (``BAMM_Preferences.models``: name, folder, source, licence, size,
whether the add-on wrote the folder); ``active_model`` is the active entry's folder, empty for the shipped
model. Imports are written under the extension's user folder (``bpy.utils.extension_path_user``), which
survives updates of the add-on. Import runs ``model_core.runtime.published.import_published`` (numpy only) on a
background thread as a ``backend.Job``; ``import_published`` here runs it to the end (scripts, tests).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import bpy

from . import preferences
from .backend import Job
from .core import EXTENSION_ROOT, RUNTIME_DIR, has_runtime, model_module
from .errors import BammInputError

TEMPLATES_DIR = EXTENSION_ROOT / "templates" / "official"
SHIPPED_NAME = "Shipped (Bandai-Namco)"
SHIPPED_SOURCE = "trained on Bandai-Namco Research Motion Dataset clips: about 17 actions and their styles"
SHIPPED_LICENCE = "CC BY-NC 4.0 (the training data's): non-commercial use"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}")


def user_models_dir() -> Path:
    """Where imports go: ``<extension user folder>/models`` (created)."""
    try:
        return Path(bpy.utils.extension_path_user(preferences.ADDON_ID, path="models", create=True))
    except (ValueError, TypeError):  # loaded as a plain add-on, not an extension
        return Path(bpy.utils.user_resource("SCRIPTS", path="bamm/models", create=True))


def about(folder) -> dict:
    """runtime.json's ``about`` of a runtime folder ({} when it has none), plus its size in bytes."""
    path = Path(folder) / "runtime.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        raise BammInputError(f"'{folder}' is not a BAMM runtime folder (no readable runtime.json)") from None
    out = dict(info.get("about") or {})
    out.setdefault("bytes", sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file()))
    return out


def active_folder(context=None) -> Path:
    """The active model's runtime folder: the active entry's when it still holds a runtime, else the shipped one."""
    prefs = preferences.get(context)
    folder = getattr(prefs, "active_model", "")
    if folder and has_runtime(folder):
        return Path(folder)
    return RUNTIME_DIR


def active_name(context=None) -> str:
    """The name the panel shows: the active model's, or the torch back ends' weights folder."""
    prefs = preferences.get(context)
    if prefs.backend != "RUNTIME":
        return f"{Path(prefs.weights_dir.rstrip('/')).name or 'shipped weights'} (torch)"
    folder = str(active_folder(context))
    for item in getattr(prefs, "models", ()):
        if item.folder == folder:
            return item.name
    return SHIPPED_NAME


def _entry(prefs, folder: Path, info: dict, *, written: bool):
    item = prefs.models.add()
    item.name = str(info.get("name") or folder.name)[:63]
    item.folder = str(folder)
    item.source = str(info.get("source") or "")[:255]
    item.licence = str(info.get("licence") or "")[:255]
    item.size_mb = float(info.get("bytes", 0)) / 1e6
    item.written_by_addon = written
    return item


def add_folder(context, folder, *, activate: bool = True) -> str:
    """Adds an existing runtime folder to the list (the add-on did not write it: removing forgets it only)."""
    prefs = preferences.get(context)
    folder = Path(bpy.path.abspath(str(folder))).resolve()
    if not has_runtime(folder):
        raise BammInputError(f"'{folder}' is not a BAMM runtime folder (runtime.json missing)")
    if any(item.folder == str(folder) for item in prefs.models):
        raise BammInputError(f"'{folder}' is already in the model list")
    item = _entry(prefs, folder, about(folder), written=False)
    if activate:
        prefs.active_model = item.folder
    return item.name


def remove(context, index: int) -> str:
    """Removes entry `index`: an import's files are deleted (only those the add-on wrote), an added folder is
    forgotten. The shipped model cannot be removed. Returns a line saying what was done."""
    prefs = preferences.get(context)
    if not 0 <= index < len(prefs.models):
        raise BammInputError("No added model selected (the shipped model cannot be removed)")
    item = prefs.models[index]
    name, folder, written = item.name, Path(item.folder), item.written_by_addon
    left = []
    if written and has_runtime(folder):
        left = model_module(".runtime.published").remove_model(folder)
    if prefs.active_model == str(folder):
        prefs.active_model = ""
    prefs.models.remove(index)
    prefs.models_index = min(prefs.models_index, len(prefs.models) - 1)
    if left:
        return f"Removed '{name}'; kept files you put in {folder}: {', '.join(left[:4])}"
    return f"Removed '{name}'" + (" and its files" if written else " from the list (its folder is untouched)")


def activate(context, index: int) -> str:
    """Makes entry `index` (-1: the shipped model) the active model; returns a line saying so."""
    prefs = preferences.get(context)
    if index < 0:
        prefs.active_model = ""
        return f"'{SHIPPED_NAME}' is the active model"
    if index >= len(prefs.models):
        raise BammInputError("No model selected in the list")
    item = prefs.models[index]
    if not has_runtime(item.folder):
        raise BammInputError(f"'{item.folder}' no longer holds a BAMM runtime (runtime.json missing)")
    prefs.active_model = item.folder
    return f"'{item.name}' is the active model"


# ------------------------------------------------------------------------------------------------- import
class _Cancelled(Exception):
    """Raised from the import's progress callback when the user cancelled."""


def check_name(context, name: str) -> str:
    name = (name or "").strip() or "HumanML3D"
    if not NAME_PATTERN.fullmatch(name):
        raise BammInputError(f"Model name {name[:40]!r}: use letters, digits, spaces, '.', '_' or '-' "
                             "(at most 63 characters)")
    prefs = preferences.get(context)
    if name == SHIPPED_NAME or any(item.name == name for item in getattr(prefs, "models", ())):
        raise BammInputError(f"A model named '{name}' exists already: choose another name")
    return name


PRECISIONS = {"INT8": "int8", "FLOAT32": "float32"}


def start_import(context, *, t2m_path: str, res_path: str, vq_path: str, clip_path: str, name: str = "",
                 precision: str = "INT8") -> tuple:
    """Checks the input on the main thread, then imports on a background thread; returns (job, name, folder).
    precision: "INT8" (the token transformers in int8: faster, smaller) or "FLOAT32" (the published code's
    tokens exactly)."""
    published = model_module(".runtime.published")
    name = check_name(context, name)
    if precision not in PRECISIONS:
        raise BammInputError(f"Precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    paths = {}
    for label, value in (("BAMM transformer", t2m_path), ("residual transformer", res_path),
                         ("RVQ-VAE", vq_path), ("CLIP ViT-B-32.pt", clip_path)):
        path = Path(bpy.path.abspath(value)) if value else None
        if path is None or not path.is_file():
            raise BammInputError(f"{label} file not found: {value or '(not given)'}")
        paths[label] = path
    if not (TEMPLATES_DIR / "templates.json").is_file():
        raise BammInputError(f"This installation has no model templates ({TEMPLATES_DIR}): install the BAMM zip "
                             "built for your platform")
    folder = user_models_dir() / re.sub(r"[^A-Za-z0-9._-]", "_", name)
    if folder.exists():
        raise BammInputError(f"'{folder}' exists already: choose another name (nothing overwritten)")
    job = Job(request=None)

    def progress(stage: str, fraction: float) -> None:
        if job.cancel_event.is_set():
            raise _Cancelled  # import_published removes its partial folder
        job.progress(stage, fraction)

    def work():
        try:
            published.import_published(t2m=paths["BAMM transformer"], res=paths["residual transformer"],
                                       vq=paths["RVQ-VAE"], clip=paths["CLIP ViT-B-32.pt"], out=folder,
                                       templates=TEMPLATES_DIR, name=name, precision=PRECISIONS[precision],
                                       progress=progress)
        except _Cancelled:
            job.finish("cancelled")
        except (ValueError, OSError) as e:  # a file that is missing, refused or not what it should be
            job.finish("error", error=str(e).splitlines()[0] if str(e) else type(e).__name__, kind="input")
        except Exception as e:  # noqa: BLE001 - reported as one line; the add-on keeps running
            job.finish("error", error=f"import failed: {type(e).__name__}: {e}", kind="failure")
        else:
            job.finish("done", result=[folder])

    threading.Thread(target=work, name="bamm-import", daemon=True).start()
    return job, name, folder


def finish_import(context, job, folder: Path) -> str:
    """After the job: the new model in the list, active. Returns its name."""
    prefs = preferences.get(context)
    if getattr(prefs, "models", None) is None:  # the add-on's preferences are not registered (a bare script)
        return folder.name
    item = _entry(prefs, folder, about(folder), written=True)
    prefs.active_model = item.folder
    prefs.models_index = len(prefs.models) - 1
    return item.name


def import_published(context=None, *, timeout: float | None = None, **paths) -> str:
    """Imports to the end (blocking) and makes the model active; returns its name. Bad input: BammInputError."""
    context = context or bpy.context
    job, _name, folder = start_import(context, **paths)
    job.wait(timeout)  # the job's error raised as BammInputError (a refused file) or BammBackendError
    return finish_import(context, job, folder)
