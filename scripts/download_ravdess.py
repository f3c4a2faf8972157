"""Download RAVDESS speech audio (Audio_Speech_Actors_01-24.zip, 208 MB) from Zenodo and unpack it.

    python scripts/download_ravdess.py [--out data/ravdess] [--zip FILE] [--url URL]

An interrupted download resumes where it stopped when the command is run again.
RAVDESS is CC BY-NC-SA 4.0: cite Livingstone & Russo (2018), https://doi.org/10.5281/zenodo.1188976
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ser_cnn.download import EXPECTED_CLIPS, ZENODO_URL, ZIP_NAME, download, extract
from ser_cnn.errors import SerError
from ser_cnn.ravdess import DEFAULT_DATA_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_DATA_DIR), help="unpack here (%(default)s)")
    parser.add_argument("--zip", default=None, help=f"zip file to use or create (data/{ZIP_NAME})")
    parser.add_argument("--url", default=ZENODO_URL, help="where to download from")
    parser.add_argument("--expect", type=int, default=EXPECTED_CLIPS, help="clips the zip holds")
    parser.add_argument("--keep-zip", action="store_true", help="keep the zip after unpacking")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    zip_path = Path(args.zip) if args.zip else Path(args.out).parent / ZIP_NAME
    try:
        download(args.url, zip_path, progress=not args.quiet)
        n = extract(zip_path, args.out, expected=args.expect)
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not args.keep_zip and args.zip is None:
        zip_path.unlink()
    print(f"unpacked {n} clips into {args.out}")
    print(f"next: python scripts/preprocess.py --data-dir {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
