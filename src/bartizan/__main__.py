"""`python -m bartizan` runs the command line."""

import sys

from bartizan.cli.main import main

sys.exit(main())
