"""Download RAVDESS speech audio (Audio_Speech_Actors_01-24.zip, 208 MB) from Zenodo and unpack it.

    python scripts/download_ravdess.py [--out data/ravdess] [--zip FILE] [--url URL]

An interrupted download resumes where it stopped when the command is run again.
"""

from __future__ import annotations

import sys

from ser_cnn.corpora.download import RAVDESS, cli


def main(argv: list[str] | None = None) -> int:
    """Run the download; the exit status of :func:`ser_cnn.corpora.download.cli`."""
    return cli(RAVDESS, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
