"""``python -m unstuck``: the same as the ``unstuck`` command."""

import sys

from .cli import main

sys.exit(main())
