"""``python -m unstuck.cli``: the same as the ``unstuck`` command."""

import sys

from . import main

sys.exit(main())
