"""Fetch a corpus archive resumably, check it, and unpack it where ser_cnn looks for it.

One machinery for every corpus that can be downloaded: a :class:`Source` says where the archive
is, which of its members to keep, where each goes and how many clips it must hold;
:func:`download`, :func:`extract` and the command line of :func:`cli` do the rest. Sources:
:data:`RAVDESS` (Zenodo 1188976, ``scripts/download_ravdess.py``) and :data:`NEMO` (GitHub
amu-cai/nEMO at a pinned commit, ``scripts/download_nemo.py``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import textwrap
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ser_cnn.corpora import nemo
from ser_cnn.errors import DataError, NameFormatError, SerError
from ser_cnn.ravdess import DEFAULT_DATA_DIR, SUFFIXES, parse_name

CHUNK = 1 << 20  # bytes per read: 1 MiB

# A member of an archive -> (its path under the output folder, whether it is a clip), or None
# to leave it out.
Member = Callable[[PurePosixPath], tuple[str, bool] | None]


@dataclass(frozen=True)
class Source:
    """A downloadable corpus archive (a zip file) and how to unpack it."""

    name: str  # the corpus, in messages: "RAVDESS"
    url: str
    archive: str  # the downloaded file's name
    home: str  # where a person can fetch the archive by hand
    expected: int  # clips the archive must hold
    default_dir: Path  # unpacked here by default
    member: Member
    required: tuple[str, ...] = ()  # non-clip targets that must be in the archive
    licence: str = ""
    next_step: str = ""  # what to run next; {out} is the output folder


def _ravdess_member(name: PurePosixPath) -> tuple[str, bool] | None:
    """RAVDESS clips keep their place in the zip (``Actor_01/03-01-…wav``); nothing else is kept."""
    if name.suffix.lower() not in SUFFIXES:
        return None
    try:
        parse_name(name.name)
    except NameFormatError:
        return None
    return str(name), True


def _nemo_member(name: PurePosixPath) -> tuple[str, bool] | None:
    """nEMO: ``samples/*.wav``, ``data.tsv``, README and LICENSE, without GitHub's top folder."""
    parts = name.parts[1:] if len(name.parts) > 1 and name.parts[0] != nemo.SAMPLES else name.parts
    if not parts:
        return None
    rest = PurePosixPath(*parts)
    if len(parts) == 2 and parts[0] == nemo.SAMPLES and rest.suffix.lower() == ".wav":
        try:
            nemo.parse_name(rest)
        except NameFormatError:
            return None
        return str(rest), True
    return (str(rest), False) if str(rest) in (nemo.TABLE, "README.md", "LICENSE") else None


RAVDESS = Source(
    name="RAVDESS",
    url="https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1",
    archive="Audio_Speech_Actors_01-24.zip",
    home="https://zenodo.org/records/1188976",
    expected=1440,  # 24 actors × 60 speech clips
    default_dir=DEFAULT_DATA_DIR,
    member=_ravdess_member,
    licence=(
        "RAVDESS is CC BY-NC-SA 4.0: cite Livingstone & Russo (2018), "
        "https://doi.org/10.5281/zenodo.1188976"
    ),
    next_step="ser-cnn preprocess --data-dir {out}",
)
NEMO_COMMIT = "66de9999a8f2f605eb5f64841790aa5cb0877782"
NEMO = Source(
    name="nEMO",
    url=f"https://github.com/amu-cai/nEMO/archive/{NEMO_COMMIT}.zip",
    archive=f"nEMO-{NEMO_COMMIT}.zip",
    home=f"https://github.com/amu-cai/nEMO/tree/{NEMO_COMMIT}",
    expected=4481,  # 9 speakers, six emotions
    default_dir=nemo.DEFAULT_DATA_DIR,
    member=_nemo_member,
    required=(nemo.TABLE,),
    licence=(
        "nEMO is CC BY-NC-SA 4.0 (attribution, non-commercial, share-alike): cite Christop I. "
        '(2024), "nEMO: Dataset of Emotional Speech in Polish", LREC-COLING 2024, '
        "https://aclanthology.org/2024.lrec-main.1059/"
    ),
    next_step="NEMO_DIR={out} python tools/robustness.py RUN  # or give {out} as data",
)
SOURCES = {"ravdess": RAVDESS, "nemo": NEMO}

# The RAVDESS names of before there were several sources (scripts/download_ravdess.py uses them).
ZENODO_URL = RAVDESS.url
ZIP_NAME = RAVDESS.archive
EXPECTED_CLIPS = RAVDESS.expected


def download(
    url: str | None = None,
    dest: str | os.PathLike | None = None,
    *,
    source: Source = RAVDESS,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming a partial ``dest.part`` left by an earlier try.

    The file appears under its final name only when complete, so an interrupted download can
    never be mistaken for a finished one.

    Parameters
    ----------
    url : str, optional
        Where to fetch the archive (``source.url`` by default); a server that honours
        ``Range`` lets a download resume.
    dest : str or os.PathLike, optional
        The archive's path (``source.archive`` beside ``source.default_dir`` by default);
        when it exists, nothing is downloaded.
    source : Source
        The corpus: default URL and path, and how to fetch the archive by hand.
    progress : bool
        Show a progress bar.
    timeout : float
        Seconds to wait for the server.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    DataError
        The server cannot be reached or answers with an error, or the transfer stops early.
    """
    url = source.url if url is None else url
    dest = source.default_dir.parent / source.archive if dest is None else Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the partial file is whole
            part.replace(dest)
            return dest
        raise DataError(f"download of {url} failed: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DataError(
            f"cannot reach {url} ({getattr(err, 'reason', err)}); download {source.archive} by "
            f"hand from {source.home} and pass it with --zip"
        ) from None
    with response:
        if have and response.status != 206:
            have = 0  # the server ignored the range request: start again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with (
            part.open("ab" if have else "wb") as f,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                desc=dest.name,
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise DataError(
            f"download of {url} stopped at {part.stat().st_size} of {total} bytes; "
            "run the same command again to resume"
        )
    part.replace(dest)
    return dest


def extract(
    zip_path: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    expected: int | None = None,
    source: Source = RAVDESS,
) -> int:
    """Check that ``zip_path`` holds ``expected`` clips of ``source``, then unpack the members
    the source keeps into ``out_dir`` (top-level entries there are replaced, others kept).

    Parameters
    ----------
    zip_path : str or os.PathLike
        The downloaded archive.
    out_dir : str or os.PathLike, optional
        Where the corpus goes (``source.default_dir`` by default); it is written only when
        the whole archive unpacked.
    expected : int, optional
        Clips the archive must hold; ``source.expected`` by default.
    source : Source
        The corpus: which members to keep and where they go.

    Returns
    -------
    int
        Number of clips unpacked.

    Raises
    ------
    DataError
        A damaged zip, one with another number of clips or without a required file, or an
        unsafe member name.
    """
    zip_path = Path(zip_path)
    out_dir = source.default_dir if out_dir is None else Path(out_dir)
    expected = source.expected if expected is None else expected
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(
            f"{zip_path}: not a readable zip file ({err}); delete it and retry"
        ) from None
    with archive:
        members = []  # (info, target)
        for info in archive.infolist():
            name = PurePosixPath(info.filename)
            kept = None if info.is_dir() else source.member(name)
            if kept is None:
                continue
            target = PurePosixPath(kept[0])
            if any(p.is_absolute() or ".." in p.parts for p in (name, target)):
                raise DataError(f"{zip_path}: unsafe member name {info.filename}")
            members.append((info, target, kept[1]))
        clips = sum(is_clip for *_, is_clip in members)
        if clips != expected:
            raise DataError(
                f"{zip_path}: holds {clips} {source.name} clips, expected {expected}; "
                "the download may be damaged: delete it and run again"
            )
        absent = [r for r in source.required if PurePosixPath(r) not in {t for _, t, _ in members}]
        if absent:
            raise DataError(
                f"{zip_path}: lacks {', '.join(absent)}; not the {source.name} archive "
                f"({source.home})"
            )
        tmp = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            for info, target, _ in tqdm(members, desc="unpacking", unit="file", leave=False):
                path = tmp.joinpath(*target.parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, path.open("wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
        except (zipfile.BadZipFile, OSError) as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(f"{zip_path}: damaged ({err}); delete it and run again") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in tmp.iterdir():
        target = out_dir / item.name
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        item.replace(target)
    tmp.rmdir()
    return clips


def cli(source: Source, argv: list[str] | None = None, *, description: str | None = None) -> int:
    """The command line of a download script: fetch ``source`` (resuming), check, unpack.

    Parameters
    ----------
    source : Source
        The corpus to fetch.
    argv : list of str, optional
        Arguments (``sys.argv[1:]`` by default): ``--out``, ``--zip``, ``--url``, ``--expect``,
        ``--keep-zip``, ``--quiet``.
    description : str, optional
        The help text's description (the script's docstring); the licence is added after it.

    Returns
    -------
    int
        Exit status: 0 done, 1 a download or archive problem (one ``error:`` line), 2 usage.
    """
    parser = argparse.ArgumentParser(
        description=description or f"Download and unpack {source.name}.",
        epilog=textwrap.fill(source.licence, 79),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default_zip = f"{source.default_dir.parent}/{source.archive}"
    parser.add_argument("--out", default=str(source.default_dir), help="unpack here (%(default)s)")
    parser.add_argument("--zip", default=None, help=f"zip file to use or create ({default_zip})")
    parser.add_argument("--url", default=source.url, help="where to download from")
    parser.add_argument("--expect", type=int, default=source.expected, help="clips the zip holds")
    parser.add_argument("--keep-zip", action="store_true", help="keep the zip after unpacking")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    zip_path = Path(args.zip) if args.zip else Path(args.out).parent / source.archive
    try:
        download(args.url, zip_path, source=source, progress=not args.quiet)
        n = extract(zip_path, args.out, expected=args.expect, source=source)
    except SerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not args.keep_zip and args.zip is None:
        zip_path.unlink()
    print(f"unpacked {n} clips into {args.out}")
    if source.licence:
        print(source.licence)
    if source.next_step:
        print(f"next: {source.next_step.format(out=args.out)}")
    return 0
