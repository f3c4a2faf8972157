"""Download nEMO (Polish emotional speech, 4,481 clips, about 500 MB) from GitHub and unpack it.

    python scripts/download_nemo.py [--out data/nemo] [--zip FILE] [--url URL]

Fetches the GitHub archive of amu-cai/nEMO at the pinned commit 66de999 and unpacks samples/
(the WAV clips), data.tsv (labels, speakers, transcripts), README.md and LICENSE into --out.
An interrupted download resumes where it stopped when the command is run again (if the server
allows it). Use the folder as data, or with NEMO_DIR for tools/robustness.py.
"""

from __future__ import annotations

import sys

from ser_cnn.corpora.download import NEMO, cli


def main(argv: list[str] | None = None) -> int:
    """Run the download; the exit status of :func:`ser_cnn.corpora.download.cli`."""
    return cli(NEMO, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
