"""`python -m photomatch` is the `photomatch` command."""

import sys

from photomatch.cli import main

sys.exit(main())
