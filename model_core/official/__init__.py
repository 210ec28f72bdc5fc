"""The published BAMM and MoMask checkpoints (HumanML3D, CLIP ViT-B/32) in this project's format.

`read` reads the `.tar` files without running code from them, `keys` holds their tensor layouts and the
conversion to the "official" architecture of `models.transformer` / `models.residual`, `importer` writes a
weights folder (`bamm import-official`).
"""
