"""Blender extension entry point: registers the ``bamm_blender`` add-on package next to this file.

Only does something when Blender loads this folder as a package (``bl_ext.<repo>.<id>``); importing it any
other way (a test runner collecting the repository, a plain ``python __init__.py``) is harmless.
"""


def register():
    from .bamm_blender import register as register_addon

    register_addon()


def unregister():
    from .bamm_blender import unregister as unregister_addon

    unregister_addon()
