"""The model core, vendored next to this package inside the extension, or installed on its own.

Inside the extension the package is ``<extension>.model_core`` (a sibling of this package); installed with
pip it is the top-level ``model_core``. Only numpy/scipy modules are imported here: torch is imported
lazily by ``backend`` (in-process) or runs in the worker process.
"""

try:
    from .. import model_core  # the extension: <extension>.model_core
except ImportError:  # installed with pip: this package is top level
    import model_core  # type: ignore[no-redef]

from importlib import import_module

skeleton = import_module(".motion.skeleton", model_core.__name__)
ik = import_module(".motion.ik", model_core.__name__)

MODEL_FPS = 20.0  # HumanML3D frame rate: every motion the model reads or writes
MODEL_PACKAGE = model_core.__name__


def model_module(name: str):
    """A model_core submodule by relative name, e.g. ``model_module(".generate")``."""
    return import_module(name, MODEL_PACKAGE)
