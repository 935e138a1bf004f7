"""`python -m cli`: the same entry point as the `photomatch` script."""

import sys

from cli import main

sys.exit(main())
