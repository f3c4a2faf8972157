"""`ser-cnn train`, runnable from a checkout: ``python scripts/train.py --help``."""

import sys

from ser_cnn.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
