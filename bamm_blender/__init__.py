"""BAMM for Blender: text-to-motion, inpainting and outpainting on an SMPL-22 armature.

Modules: ``props`` (scene settings), ``preferences``, ``operators`` (modal jobs), ``panel`` (sidebar UI),
``backend`` (the bundled runtime's worker process by default, or torch in a worker / in Blender), ``bake``
(keys), ``armature``, ``results``, ``headless`` (the operators' work as plain functions), ``core`` (the model
core package, the extension's model folders), ``retarget`` / ``retarget_ui`` / ``export`` (motion onto other
rigs, file export), ``sequence`` (one prompt per timeline segment, generated as one motion).
"""

from . import operators, panel, preferences, props, retarget_ui, sequence

_MODULES = (preferences, props, operators, panel, retarget_ui, sequence)  # their panels sit under panel's


def register() -> None:
    for module in _MODULES:
        module.register()


def unregister() -> None:
    from . import backend

    for module in reversed(_MODULES):
        module.unregister()
    backend.shutdown_all()
