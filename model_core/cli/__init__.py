"""The ``bamm`` command: `main` (the sub-command table and the one error convention) and one module per
sub-command group: `generate` (generate, edit), `plan` (several actions), `vocab`, `blender` (export,
build-extension), with `common` (the output files, the model of --weights) and `preview` (GIF, filmstrip).

May import every other package of model_core. Nothing imports it but ``official.importer`` (the ``bamm
import-official`` command, which lives with the published checkpoints' code and uses the command's parser).
"""

from .main import ArgumentParser, CLIError, main

__all__ = ["ArgumentParser", "CLIError", "main"]
