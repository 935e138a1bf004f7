"""`python -m photomatch.cli`: the same entry point as the `photomatch` script."""

import sys

from photomatch.cli import main

sys.exit(main())
