"""`ser-cnn preprocess`, runnable from a checkout: ``python scripts/preprocess.py --help``."""

import sys

from ser_cnn.cli.preprocess import main

if __name__ == "__main__":
    sys.exit(main())
