"""``python -m bamm_blender <joints.npy> --format fbx|bvh|glb --out <file> …``: the exporter's command line
(what ``bamm export`` runs in a Python that can import bpy)."""

import sys

from .export import main

sys.exit(main())
