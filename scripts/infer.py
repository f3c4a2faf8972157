"""`ser-cnn infer`, runnable from a checkout: ``python scripts/infer.py --help``."""

import sys

from ser_cnn.cli.infer import main

if __name__ == "__main__":
    sys.exit(main())
