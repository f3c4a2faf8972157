"""`ser-cnn evaluate`, runnable from a checkout: ``python scripts/evaluate.py --help``."""

import sys

from ser_cnn.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
