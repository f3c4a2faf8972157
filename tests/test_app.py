"""The web app (`ser-cnn app`): its limits, analysis and figures, its command line, and (slow) the
whole page in headless Chromium, as a person would use it."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import soundfile as sf

from ser_cnn.app import (
    Limits,
    analyse,
    probability_figure,
    signal_figure,
    timeline_figure,
    verdict_text,
)
from ser_cnn.errors import AudioError, ParameterError

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (REPO / "examples").iterdir() if p.suffix in (".wav", ".flac"))
ANGRY = REPO / "examples" / "03-01-05-02-01-01-11.flac"
HAS_GRADIO = importlib.util.find_spec("gradio") is not None


@pytest.fixture(scope="module")
def rec():
    from ser_cnn.inference import load_recognizer

    return load_recognizer()


def write_long(path: Path) -> Path:
    """The five example clips one after another, half a second apart: 20.7 s at 48 kHz."""
    parts = []
    for f in EXAMPLES:
        y, sr = sf.read(f, always_2d=True)
        assert sr == 48_000
        parts += [y.mean(axis=1), np.zeros(sr // 2)]
    sf.write(path, np.concatenate(parts), 48_000)
    return path


def write_not_audio(path: Path) -> Path:
    path.write_text("These are meeting notes, not a recording.\n" * 20)
    return path


# -- limits -------------------------------------------------------------------------------------


def test_size_limit_is_checked_before_decoding(tmp_path):
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (2 * 2**20))  # not audio at all: decoding it would fail otherwise
    with pytest.raises(AudioError, match=r"^big\.wav: 2\.0 MB is over this app's limit of 1 MB"):
        Limits(max_mb=1).check(big)


def test_duration_limit_reads_the_header(tmp_path):
    path = tmp_path / "three.wav"
    sf.write(path, np.zeros(3 * 16_000, dtype=np.float32), 16_000)
    assert Limits().check(path) == pytest.approx(3.0)
    with pytest.raises(AudioError, match=r"three\.wav: 0\.1 minutes is over .* 0\.04 minutes"):
        Limits(max_minutes=0.04).check(path)


def test_limits_must_be_positive():
    with pytest.raises(ParameterError, match="positive"):
        Limits(max_mb=0)


# -- analysis and figures -------------------------------------------------------------------------


def test_analysis_matches_the_recognizer(rec):
    expected = rec.predict(ANGRY)
    result = analyse(rec, ANGRY)
    p = result.prediction
    assert p.emotion == expected.emotion
    assert p.probabilities == pytest.approx(expected.probabilities)
    assert result.log_mel.shape == (rec.feature_config.n_mels, rec.feature_config.n_frames)
    assert result.sample_rate == 16_000 and len(result.samples) == pytest.approx(
        3.54 * 16_000, 0.01
    )
    assert f"hears **{expected.emotion}**" in verdict_text(p)
    bars = probability_figure(p, rec.labels)
    assert len(bars.axes[0].patches) == len(rec.labels) * len(rec.models)
    assert len(signal_figure(result).axes) == 3  # waveform, log-mel and its colour bar
    assert timeline_figure(p, rec.labels) is None  # a short clip has no windows


def test_long_recording_gets_a_timeline(rec, tmp_path):
    result = analyse(rec, write_long(tmp_path / "five.flac"))
    p = result.prediction
    assert p.duration == pytest.approx(20.7, abs=0.1) and len(p.windows) > 10
    assert "most confident window" in result.log_mel_caption
    assert result.log_mel.shape == (rec.feature_config.n_mels, rec.feature_config.n_frames)
    assert "windows" in verdict_text(p)
    timeline = timeline_figure(p, rec.labels)
    assert len(timeline.axes[0].patches) == len(p.windows) * len(rec.models)


def test_mlp_alone_has_no_log_mel():
    from ser_cnn.inference import load_recognizer

    mlp = load_recognizer(models=["mlp"])
    result = analyse(mlp, ANGRY)
    assert result.log_mel is None and list(result.prediction.scores) == ["mlp"]
    assert "The MLP baseline hears" in verdict_text(result.prediction)
    assert len(signal_figure(result).axes) == 1
    assert len(probability_figure(result.prediction, mlp.labels).axes[0].patches) == 8


def test_bad_file_message_names_the_file_not_the_upload_folder(rec, tmp_path):
    (tmp_path / "upload").mkdir()
    bad = write_not_audio(tmp_path / "upload" / "notes.wav")
    with pytest.raises(AudioError) as err:
        analyse(rec, bad)
    message = str(err.value)
    assert message.startswith("notes.wav: not an audio file that libsndfile can read")
    assert str(tmp_path) not in message


# -- command line ---------------------------------------------------------------------------------


def test_ser_cnn_help_lists_the_app(capsys):
    from ser_cnn.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert re.search(r"^\s+app\s+a web page", capsys.readouterr().out, re.MULTILINE)


def test_app_listens_on_this_machine_only_by_default():
    from ser_cnn.cli.app import parse_args

    args = parse_args([])
    assert (args.host, args.port, args.max_mb, args.max_minutes) == ("127.0.0.1", 7860, 20, 10)
    with pytest.raises(SystemExit):
        parse_args(["--max-mb", "0"])


def test_app_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    from ser_cnn.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(
        app.importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name)
    )
    assert app.main([]) == 1
    assert "pip install 'ser_cnn[app]'" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_GRADIO, reason="Gradio is not installed (pip install '.[app]')")
def test_page_shows_a_bad_file_as_a_message(rec, tmp_path):
    from ser_cnn.app import build_app

    demo = build_app(rec)
    assert demo.analytics_enabled is False
    (handler,) = [f.fn for f in demo.fns.values()]
    error, verdict, bars, signal, timeline = handler(str(write_not_audio(tmp_path / "x.wav")))
    assert error["visible"] and "x.wav: not an audio file" in error["value"]
    assert (verdict, bars, signal, timeline["visible"]) == ("", None, None, False)
    error, verdict, bars, signal, timeline = handler(str(ANGRY))
    assert not error["visible"] and "hears **angry**" in verdict
    assert bars is not None and signal is not None and not timeline["visible"]


@pytest.mark.skipif(not HAS_GRADIO, reason="Gradio is not installed (pip install '.[app]')")
def test_app_refuses_a_speaker_normalised_cnn():
    from types import SimpleNamespace

    from ser_cnn.app import build_app

    with pytest.raises(ParameterError, match="several recordings of one speaker"):
        build_app(SimpleNamespace(speaker_normalized=True, run_dir="refit"))


# -- the page in a real browser -------------------------------------------------------------------

CHROMIUM = os.environ.get("SER_CHROMIUM") or shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # a fake microphone that plays a beep, allowed without asking
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def browser_missing() -> str | None:
    if not HAS_GRADIO:
        return "Gradio is not installed (pip install '.[app]')"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install '.[dev]')"
    if CHROMIUM is None:
        return "no Chromium to drive (apt-get install chromium, or set SER_CHROMIUM)"
    return None


@pytest.fixture
def app_url(tmp_path):
    """`ser-cnn app` in a subprocess on a free port; its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, GRADIO_TEMP_DIR=str(tmp_path / "uploads"), TF_CPP_MIN_LOG_LEVEL="3")
    log = (tmp_path / "app.log").open("w")
    code = "from ser_cnn.cli import main; raise SystemExit(main())"
    args = [sys.executable, "-c", code, "app", "--port", str(port)]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app stopped: {(tmp_path / 'app.log').read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the app did not answer in time: {(tmp_path / 'app.log').read_text()}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.slow
@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_page_in_a_browser(app_url, rec, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expected = rec.predict(ANGRY)
    long = write_long(tmp_path / "five.flac")
    bad = write_not_audio(tmp_path / "bad.wav")
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (21 * 2**20))  # over the default 20 MB
    requested = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(90_000)
        page.on("request", lambda r: requested.append(r.url))

        def upload(path: Path):
            page.goto(app_url)
            page.locator("#recording input[type=file]").set_input_files(path)

        # an example clip: the first model's emotion (the shipped run's encoder), as
        # load_recognizer().predict says
        upload(ANGRY)
        expect(page.locator("#verdict")).to_contain_text("hears")
        shown = re.search(
            r"The Whisper encoder hears (\w+) \(([\d.]+)\)",
            page.locator("#verdict").inner_text(),
        )
        assert shown.groups() == (expected.emotion, f"{expected.probability:.2f}")
        expect(page.locator("#bars img")).to_be_visible()
        expect(page.locator("#signal img")).to_be_visible()
        expect(page.locator("#timeline")).to_have_count(0)

        # a long recording: its windows on a timeline
        upload(long)
        expect(page.locator("#timeline img")).to_be_visible()
        expect(page.locator("#verdict")).to_contain_text("windows")
        if os.environ.get("SER_APP_SCREENSHOT"):  # the README's picture
            save_screenshot(page, Path(os.environ["SER_APP_SCREENSHOT"]))

        # a text file named .wav: the project's message, no traceback
        upload(bad)
        expect(page.locator("#error")).to_contain_text(
            "bad.wav: not an audio file that libsndfile can read"
        )
        assert "Traceback" not in page.locator("body").inner_text()
        expect(page.locator("#verdict")).to_have_text("")

        # over --max-mb (20): refused on upload, before any decoding
        upload(big)
        expect(page.get_by_text("exceed the maximum allowed size")).to_be_visible()

        # the microphone (Chromium's fake one plays a beep): recorded, then analysed
        page.goto(app_url)
        page.locator("#recording button[aria-label='Record audio']").click()
        page.locator("#recording button:visible", has_text="Record").first.click()
        page.wait_for_timeout(2500)
        page.locator("#recording button:visible", has_text="Stop").first.click()
        expect(page.locator("#verdict")).to_contain_text("hears")
        browser.close()
    # everything the page loaded came from the app itself: no CDN, fonts or analytics
    outside = [u for u in requested if urlparse(u).scheme in ("http", "https", "ws", "wss")]
    outside = [u for u in outside if urlparse(u).hostname != "127.0.0.1"]
    assert requested and not outside


def save_screenshot(page, path: Path) -> None:
    """A full-page screenshot with at most 256 colours, which keeps it small."""
    from PIL import Image

    raw = path.with_suffix(".raw.png")
    page.wait_for_timeout(500)
    page.screenshot(path=raw, full_page=True)
    with Image.open(raw) as image:
        image.convert("RGB").quantize(colors=128).save(path, optimize=True)
    raw.unlink()
