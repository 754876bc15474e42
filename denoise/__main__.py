"""`python -m denoise IN OUT [--atten-lim DB] [--no-denoise]`: see denoise.cli."""

import sys

from denoise.cli import main

sys.exit(main())
