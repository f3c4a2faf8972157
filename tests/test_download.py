"""scripts/download_ravdess.py against a small zip served on 127.0.0.1 (Range requests too)."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import ClassVar

import pytest

from ser_cnn.download import download, extract
from ser_cnn.errors import DataError
from tests.conftest import REPO, make_ravdess_tree


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


@pytest.fixture
def server(tmp_path):
    tree = tmp_path / "src"
    make_ravdess_tree(tree, actors=(1, 2), emotions=(1, 5))
    zip_path = tmp_path / "Audio_Speech_Actors_01-24.zip"
    with zipfile.ZipFile(zip_path, "w") as z:
        for f in sorted(tree.rglob("*.wav")):
            z.write(f, f.relative_to(tree).as_posix())
    RangeHandler.payload = zip_path.read_bytes()
    RangeHandler.ranges_seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/Audio_Speech_Actors_01-24.zip"
    httpd.shutdown()


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
