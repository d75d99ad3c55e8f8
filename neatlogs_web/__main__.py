"""`python -m neatlogs_web` is the `neatlogs-web` command."""

import sys

from .cli import main

sys.exit(main())
