"""``python -m prunemip``: the command line."""

import sys

from prunemip.cli import main

sys.exit(main())
