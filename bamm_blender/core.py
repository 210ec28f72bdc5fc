"""The model core, vendored next to this package inside the extension, or installed on its own; and where the
extension keeps its model files.

Inside the extension the package is ``<extension>.model_core`` (a sibling of this package); installed with
pip it is the top-level ``model_core``. Only numpy modules are imported here: torch is imported lazily by
``backend`` (in-process) or runs in a worker process.

Model files inside the extension (the zip builder writes them there):

* ``EXTENSION_ROOT / "runtime"`` (``RUNTIME_DIR``): the bundled ONNX Runtime export of the shipped weights,
  read by the default back end (``python -m model_core.serving.worker`` with a ``{"backend": "onnx"}`` model spec).
* ``EXTENSION_ROOT / "weights"`` (``WEIGHTS_DIR``): the shipped torch weights (safetensors + JSON), read by
  the torch back ends.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

try:
    from .. import model_core  # the extension: <extension>.model_core
except ImportError:  # installed with pip: this package is top level
    import model_core  # type: ignore[no-redef]

skeleton = import_module(".motion.skeleton", model_core.__name__)
ik = import_module(".motion.ik", model_core.__name__)

MODEL_FPS = 20.0  # HumanML3D frame rate: every motion the model reads or writes
MODEL_PACKAGE = model_core.__name__
EXTENSION_ROOT = Path(__file__).resolve().parents[1]  # holds model_core/ (the worker's PYTHONPATH)
RUNTIME_DIR = EXTENSION_ROOT / "runtime"
WEIGHTS_DIR = EXTENSION_ROOT / "weights"
DEFAULT_MAX_FRAMES = 196  # HumanML3D's limit, used when no model config can be read


def model_module(name: str):
    """A model_core submodule by relative name, e.g. ``model_module(".generate")``."""
    return import_module(name, MODEL_PACKAGE)


def has_runtime(folder: str | Path = RUNTIME_DIR) -> bool:
    """Whether ``folder`` holds an exported runtime (its ``runtime.json``)."""
    return (Path(folder) / "runtime.json").is_file()


def max_frames(folder: str | Path | None = None) -> int:
    """Most 20-fps frames one generation may ask for, read by the request contract (``limits.Limits``) from the
    model config in ``folder`` (a runtime or weights folder; None: the bundled runtime, else the shipped
    weights). ``DEFAULT_MAX_FRAMES`` when no readable config is found (the model then checks the length)."""
    limits = model_module(".contract.limits")
    for candidate in [Path(folder)] if folder else [RUNTIME_DIR, WEIGHTS_DIR]:
        try:
            return limits.Limits.from_folder(candidate).max_frames
        except limits.InputError:
            continue
    return DEFAULT_MAX_FRAMES


def max_seconds(folder: str | Path | None = None) -> float:
    """``max_frames(folder)`` in seconds (the longest Seconds value the panel accepts)."""
    return max_frames(folder) / MODEL_FPS
