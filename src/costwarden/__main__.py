"""``python -m costwarden`` is the ``costwarden`` command."""

import sys

from costwarden.cli import main

sys.exit(main())
