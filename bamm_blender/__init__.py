"""BAMM for Blender: text-to-motion, inpainting and outpainting on an SMPL-22 armature.

Layout: thin operators over work modules. ``props`` (scene settings, job status), ``preferences``,
``operators`` (every operator: read the settings, call a work function, report; one error-reporting
decorator, ``errors.reports_errors``), ``panel`` (every panel and list). Work modules: ``headless``
(generation as plain functions), ``backend`` (the bundled runtime's worker process by default, or torch in a
worker / in Blender), ``bake`` (keys), ``armature``, ``results``, ``retarget`` / ``bone_map`` /
``retarget_scene`` / ``export`` (motion onto other rigs, file export), ``sequence`` (one prompt per timeline
segment, generated as one motion), ``core`` (the model core package, the extension's model folders).
"""

from . import operators, operators_models, panel, preferences, props

_MODULES = (preferences, props, operators, operators_models, panel)


def register() -> None:
    for module in _MODULES:
        module.register()


def unregister() -> None:
    from . import backend

    for module in reversed(_MODULES):
        module.unregister()
    backend.shutdown_all()
