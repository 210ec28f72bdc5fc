"""BAMM model core: motion representation, data, tokenizer, transformers, decoding, training, evaluation.

Pure torch/numpy. Never imports bpy; relative imports only, so the package also works vendored inside
the Blender extension.
"""

__version__ = "0.1.0"
