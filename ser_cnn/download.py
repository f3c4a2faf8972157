"""Fetch RAVDESS speech audio from Zenodo, resumably, and unpack it where ser_cnn looks for it."""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ser_cnn.errors import DataError, NameFormatError
from ser_cnn.ravdess import DEFAULT_DATA_DIR, SUFFIXES, parse_name

ZENODO_URL = "https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1"
ZIP_NAME = "Audio_Speech_Actors_01-24.zip"
EXPECTED_CLIPS = 1440  # 24 actors × 60 speech clips
CHUNK = 1 << 20  # bytes per read: 1 MiB


def download(
    url: str = ZENODO_URL,
    dest: str | os.PathLike = DEFAULT_DATA_DIR.parent / ZIP_NAME,
    *,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming a partial ``dest.part`` left by an earlier try.

    The file appears under its final name only when complete, so an interrupted download can
    never be mistaken for a finished one.

    Returns
    -------
    Path
        ``dest``.
    """
    dest = Path(dest)
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
            f"cannot reach {url} ({getattr(err, 'reason', err)}); download {ZIP_NAME} by hand "
            "from https://zenodo.org/records/1188976 and pass it with --zip"
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
    out_dir: str | os.PathLike = DEFAULT_DATA_DIR,
    *,
    expected: int = EXPECTED_CLIPS,
) -> int:
    """Check that ``zip_path`` holds ``expected`` RAVDESS clips, then unpack them into ``out_dir``.

    Returns
    -------
    int
        Number of clips unpacked.

    Raises
    ------
    DataError
        A damaged zip, or one with another number of clips.
    """
    zip_path, out_dir = Path(zip_path), Path(out_dir)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(
            f"{zip_path}: not a readable zip file ({err}); delete it and retry"
        ) from None
    with archive:
        members = []
        for info in archive.infolist():
            name = PurePosixPath(info.filename)
            if info.is_dir() or name.suffix.lower() not in SUFFIXES:
                continue
            if name.is_absolute() or ".." in name.parts:
                raise DataError(f"{zip_path}: unsafe member name {info.filename}")
            try:
                parse_name(name.name)
            except NameFormatError:
                continue
            members.append(info)
        if len(members) != expected:
            raise DataError(
                f"{zip_path}: holds {len(members)} RAVDESS clips, expected {expected}; "
                "the download may be damaged: delete it and run again"
            )
        tmp = out_dir.with_name(out_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            for info in tqdm(members, desc="unpacking", unit="clip", leave=False):
                archive.extract(info, tmp)
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
    return len(members)
