"""ser_cnn/corpora/download.py, scripts/download_ravdess.py and scripts/download_nemo.py against
small zips served on 127.0.0.1 (Range requests too)."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import ClassVar

import pytest

from ser_cnn import corpora
from ser_cnn.corpora.download import NEMO, NEMO_COMMIT, download, extract
from ser_cnn.errors import DataError
from tests.conftest import REPO, make_ravdess_tree
from tests.test_corpora import NEMO_ROWS, make_nemo


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one in-memory file, honouring 'Range: bytes=N-' as Zenodo does."""

    payload = b""
    ranges_seen: ClassVar[list[str]] = []

    def do_GET(self):
        data, start = self.payload, 0
        header = self.headers.get("Range")
        if header:
            self.ranges_seen.append(header)
            start = int(header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


def serve(zip_path: Path):
    """Serve ``zip_path`` on 127.0.0.1 until the generator is closed; yields its URL."""
    RangeHandler.payload = zip_path.read_bytes()
    RangeHandler.ranges_seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{zip_path.name}"
    httpd.shutdown()


@pytest.fixture
def server(tmp_path):
    tree = tmp_path / "src"
    make_ravdess_tree(tree, actors=(1, 2), emotions=(1, 5))
    zip_path = tmp_path / "Audio_Speech_Actors_01-24.zip"
    with zipfile.ZipFile(zip_path, "w") as z:
        for f in sorted(tree.rglob("*.wav")):
            z.write(f, f.relative_to(tree).as_posix())
    yield from serve(zip_path)


def nemo_zip(tmp_path: Path, *, table: bool = True) -> Path:
    """A small nEMO archive laid out as GitHub's: everything under nEMO-<commit>/."""
    tree = make_nemo(tmp_path / "nemo-src")
    (tree / "README.md").write_text("# nEMO", encoding="utf-8")
    (tree / "LICENSE").write_text("CC BY-NC-SA 4.0", encoding="utf-8")
    (tree / ".gitattributes").write_text("*.wav binary", encoding="utf-8")  # left out
    (tree / "samples" / "notes.txt").write_text("not a clip", encoding="utf-8")  # left out
    if not table:
        (tree / "data.tsv").unlink()
    zip_path = tmp_path / NEMO.archive
    with zipfile.ZipFile(zip_path, "w") as z:
        z.writestr(f"nEMO-{NEMO_COMMIT}/", "")
        for f in sorted(p for p in tree.rglob("*") if p.is_file()):
            z.write(f, f"nEMO-{NEMO_COMMIT}/{f.relative_to(tree).as_posix()}")
    return zip_path


@pytest.fixture
def nemo_server(tmp_path):
    yield from serve(nemo_zip(tmp_path))


def test_download_and_extract(server, tmp_path):
    dest = download(server, tmp_path / "dl" / "ravdess.zip", progress=False)
    assert dest.read_bytes() == RangeHandler.payload
    n = extract(dest, tmp_path / "ravdess", expected=4)
    assert n == 4
    assert sorted(p.name for p in (tmp_path / "ravdess").glob("Actor_*/*.wav")) == [
        "03-01-01-01-01-01-01.wav",
        "03-01-01-01-01-01-02.wav",
        "03-01-05-01-01-01-01.wav",
        "03-01-05-01-01-01-02.wav",
    ]


def test_partial_download_resumes_with_a_range_request(server, tmp_path):
    dest = tmp_path / "ravdess.zip"
    half = len(RangeHandler.payload) // 2
    Path(str(dest) + ".part").write_bytes(RangeHandler.payload[:half])
    download(server, dest, progress=False)
    assert RangeHandler.ranges_seen == [f"bytes={half}-"]
    assert dest.read_bytes() == RangeHandler.payload
    assert not Path(str(dest) + ".part").exists()


def test_complete_partial_file_is_finished_without_data(server, tmp_path):
    dest = tmp_path / "ravdess.zip"
    Path(str(dest) + ".part").write_bytes(RangeHandler.payload)
    download(server, dest, progress=False)
    assert dest.read_bytes() == RangeHandler.payload


def test_wrong_clip_count_is_refused(server, tmp_path):
    dest = download(server, tmp_path / "ravdess.zip", progress=False)
    with pytest.raises(DataError, match=r"holds 4 RAVDESS clips, expected 1440"):
        extract(dest, tmp_path / "ravdess")
    assert not (tmp_path / "ravdess").exists()


def test_damaged_zip_is_refused(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="not a readable zip"):
        extract(bad, tmp_path / "out", expected=1)


def test_unreachable_host_explains_the_manual_route(tmp_path):
    with pytest.raises(DataError, match=r"zenodo\.org/records/1188976"):
        download("http://127.0.0.1:9/none.zip", tmp_path / "x.zip", progress=False, timeout=5)
    with pytest.raises(DataError, match=rf"nEMO-{NEMO_COMMIT}\.zip by hand from .*amu-cai/nEMO"):
        download("http://127.0.0.1:9/n.zip", tmp_path / "n.zip", source=NEMO, timeout=5)


def test_unsafe_member_names_are_refused(tmp_path):
    clip = make_ravdess_tree(tmp_path / "src", actors=(1,), emotions=(1,))[0]
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.write(clip, f"../{clip.name}")
    with pytest.raises(DataError, match="unsafe member name"):
        extract(bad, tmp_path / "out", expected=1)
    assert not (tmp_path / "out").exists()


def test_nemo_source_is_the_pinned_commit():
    assert NEMO.url == f"https://github.com/amu-cai/nEMO/archive/{NEMO_COMMIT}.zip"
    assert NEMO_COMMIT == "66de9999a8f2f605eb5f64841790aa5cb0877782"
    assert NEMO.expected == 4481 and "CC BY-NC-SA 4.0" in NEMO.licence
    assert "Christop" in NEMO.licence and "LREC-COLING 2024" in NEMO.licence


def test_nemo_download_and_extract(nemo_server, tmp_path):
    dest = download(nemo_server, tmp_path / "dl" / NEMO.archive, source=NEMO, progress=False)
    assert dest.read_bytes() == RangeHandler.payload
    out = tmp_path / "data" / "nemo"
    assert extract(dest, out, expected=len(NEMO_ROWS), source=NEMO) == len(NEMO_ROWS)
    assert sorted(p.name for p in out.iterdir()) == ["LICENSE", "README.md", "data.tsv", "samples"]
    assert sorted(p.name for p in (out / "samples").iterdir()) == sorted(r[0] for r in NEMO_ROWS)
    assert corpora.detect(out).corpus == "nemo"
    manifest, problems = corpora.load(out, strict=True)
    assert len(manifest) == len(NEMO_ROWS) and problems == []


def test_nemo_archive_with_another_count_or_no_table_is_refused(nemo_server, tmp_path):
    dest = download(nemo_server, tmp_path / NEMO.archive, source=NEMO, progress=False)
    with pytest.raises(DataError, match=r"holds 6 nEMO clips, expected 4481"):
        extract(dest, tmp_path / "nemo", source=NEMO)
    bare = nemo_zip(tmp_path / "bare", table=False)
    with pytest.raises(DataError, match=r"lacks data\.tsv; not the nEMO archive"):
        extract(bare, tmp_path / "nemo", expected=len(NEMO_ROWS), source=NEMO)
    assert not (tmp_path / "nemo").exists()


@pytest.mark.slow
def test_script_end_to_end(server, tmp_path):
    out = tmp_path / "data" / "ravdess"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "download_ravdess.py"),
            "--url",
            server,
            "--out",
            str(out),
            "--expect",
            "4",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "unpacked 4 clips" in result.stdout
    assert len(list(out.glob("Actor_*/*.wav"))) == 4
    assert not (out.parent / "Audio_Speech_Actors_01-24.zip").exists()


@pytest.mark.slow
def test_nemo_script_end_to_end(nemo_server, tmp_path):
    out = tmp_path / "data" / "nemo"
    script = str(REPO / "scripts" / "download_nemo.py")
    args = ["--url", nemo_server, "--out", str(out), "--expect", "6", "--quiet"]
    result = subprocess.run(
        [sys.executable, script, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "unpacked 6 clips" in result.stdout and "CC BY-NC-SA 4.0" in result.stdout
    assert (out / "data.tsv").is_file() and len(list(out.glob("samples/*.wav"))) == 6
    assert not (out.parent / NEMO.archive).exists()
    helped = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True)
    assert "CC BY-NC-SA 4.0" in helped.stdout and "Christop" in helped.stdout
