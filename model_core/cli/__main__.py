"""``python -m model_core.cli``: the ``bamm`` command."""

import sys

from .main import main

sys.exit(main())
