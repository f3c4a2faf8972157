"""The web app (`ser-cnn app`): its limits, analysis and figures, its command line, and (slow) the
whole page in headless Chromium, as a person would use it."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import soundfile as sf

from ser_cnn.errors import AudioError, ParameterError
from ser_cnn.serving.app import (
    Limits,
    analyse,
    live_text,
    log_mel_image,
    probability_html,
    timeline_frame,
    verdict_text,
    windows_html,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (REPO / "examples").iterdir() if p.suffix in (".wav", ".flac"))
ANGRY = REPO / "examples" / "03-01-05-02-01-01-11.flac"
HAS_GRADIO = importlib.util.find_spec("gradio") is not None


@pytest.fixture(scope="module")
def rec():
    from ser_cnn.serving.inference import load_recognizer

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


def bar_values(html: str) -> dict[tuple[str, str], float]:
    """(model, emotion) -> probability of the bars of :func:`probability_html`."""
    found = re.findall(r'data-model="(\w+)" data-emotion="(\w+)" data-p="([\d.]+)"', html)
    return {(m, e): float(p) for m, e, p in found}


def test_analysis_matches_the_recognizer(rec):
    expected = rec.predict(ANGRY)
    result = analyse(rec, ANGRY)
    p = result.prediction
    assert p.emotion == expected.emotion
    assert p.probabilities == pytest.approx(expected.probabilities)
    assert result.log_mel.shape == (rec.feature_config.n_mels, rec.feature_config.n_frames)
    assert f"hears **{expected.emotion}**" in verdict_text(p)
    bars = bar_values(probability_html(p, rec.labels))
    assert len(bars) == len(rec.labels) * len(rec.models)
    for (model, emotion), value in bars.items():
        # the page shows 4 decimals
        assert value == pytest.approx(expected.scores[model].probabilities[emotion], abs=5e-5)
    image = log_mel_image(result.log_mel)
    assert image.shape == (*result.log_mel.shape, 3) and image.dtype == np.uint8
    # low bands at the bottom: the loudest cell is the colour map's top colour, the quietest
    # its bottom one, each in its band counted from the image's last row
    top, bottom = (
        np.unravel_index(f(result.log_mel), result.log_mel.shape) for f in (np.argmax, np.argmin)
    )
    assert tuple(image[-1 - top[0], top[1]]) == (252, 253, 191)  # magma's yellow: #fcfdbf
    assert tuple(image[-1 - bottom[0], bottom[1]]) == (0, 0, 4)  # magma's black: #000004
    assert not p.windows  # a short clip has no windows, so no timeline


def test_long_recording_gets_a_timeline(rec, tmp_path):
    result = analyse(rec, write_long(tmp_path / "five.flac"))
    p = result.prediction
    assert p.duration == pytest.approx(20.7, abs=0.1) and len(p.windows) > 10
    assert "most confident window" in result.log_mel_caption
    assert result.log_mel.shape == (rec.feature_config.n_mels, rec.feature_config.n_frames)
    assert "windows" in verdict_text(p)
    first = rec.models[0]
    frame = timeline_frame(p.windows, first, rec.labels)
    voiced = [w for w in p.windows if not w.silent]
    assert len(frame) == len(voiced) * len(rec.labels)
    w = voiced[0]
    rows = frame[frame.time == (w.start + w.end) / 2]
    assert dict(zip(rows.emotion, rows.probability, strict=True)) == w.scores[first].probabilities


def test_mlp_alone_has_no_log_mel():
    from ser_cnn.serving.inference import load_recognizer

    mlp = load_recognizer(models=["mlp"])
    result = analyse(mlp, ANGRY)
    assert result.log_mel is None and list(result.prediction.scores) == ["mlp"]
    assert "The MLP baseline hears" in verdict_text(result.prediction)
    assert len(bar_values(probability_html(result.prediction, mlp.labels))) == 8


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


@pytest.mark.skipif(not HAS_GRADIO, reason="Gradio is not installed (pip install '.[app]')")
def test_app_serves_the_front_end_it_is_given(tmp_path, capsys):
    from ser_cnn.cli.app import main

    # the recipe reaches load_recognizer, which refuses it before any page is served
    assert main(["--front-end", str(tmp_path / "none.toml")]) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "none.toml" in err


def test_app_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    from ser_cnn.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(
        app.importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name)
    )
    assert app.main([]) == 1
    assert "pip install 'ser_cnn[app]'" in capsys.readouterr().err


def handlers(demo) -> dict:
    """The page's event functions by API name (the microphone's start has none)."""
    return {f.api_name: f.fn for f in demo.fns.values()}


@pytest.mark.skipif(not HAS_GRADIO, reason="Gradio is not installed (pip install '.[app]')")
def test_page_shows_a_bad_file_as_a_message(rec, tmp_path):
    from ser_cnn.serving.app import build_app

    demo = build_app(rec)
    assert demo.analytics_enabled is False
    handler = handlers(demo)["analyse"]
    error, verdict, bars, log_mel, timeline = handler(str(write_not_audio(tmp_path / "x.wav")))
    assert error["visible"] and "x.wav: not an audio file" in error["value"]
    assert (verdict, bars, log_mel["visible"], timeline["visible"]) == ("", "", False, False)
    error, verdict, bars, log_mel, timeline = handler(str(ANGRY))
    assert not error["visible"] and "hears **angry**" in verdict
    assert bar_values(bars) and log_mel["visible"] and not timeline["visible"]
    assert log_mel["value"].shape == (rec.feature_config.n_mels, rec.feature_config.n_frames, 3)


@pytest.mark.skipif(not HAS_GRADIO, reason="Gradio is not installed (pip install '.[app]')")
def test_uploads_and_live_streams_have_their_own_limits(rec):
    from ser_cnn.serving.app import build_app

    demo = build_app(rec, workers=3, live=5)
    limits = {f.api_name: (f.concurrency_id, f.concurrency_limit) for f in demo.fns.values()}
    assert limits["analyse"] == ("analyse", 3) and limits["live"] == ("live", 5)
    with pytest.raises(ParameterError, match="at least 1"):
        build_app(rec, workers=0)


@pytest.mark.skipif(not HAS_GRADIO, reason="Gradio is not installed (pip install '.[app]')")
def test_live_tab_gives_the_windows_of_the_file(rec, tmp_path):
    """The browser's chunks (16-bit PCM at 48 kHz, a quarter second each) through the Live
    tab's handler give the windows ``infer --window 3 --hop 0.5`` gives the file."""
    from ser_cnn.serving.app import LIVE_CHUNK, build_app

    path = write_long(tmp_path / "five.flac")
    y, sr = sf.read(path, dtype="int16")
    demo = build_app(rec, hop=0.5)
    start, update = handlers(demo)["false"], handlers(demo)["live"]
    now, strip, plot, session = start()
    assert "Listening" in now and plot is None
    step = round(LIVE_CHUNK * sr)
    for i in range(0, len(y), step):
        now, strip, plot, session = update((sr, y[i : i + step]), session)
    live = session.updates
    offline = rec.predict(path, window=3.0, hop=0.5).windows
    full = [w for w in offline if w.end - w.start == pytest.approx(3.0)]  # the stream's are full
    starts = [t for u in live for t in (u.start, u.end)]
    assert starts == pytest.approx([t for w in full for t in (w.start, w.end)])
    first = rec.models[0]
    both = [(u, w) for u, w in zip(live, full, strict=True) if u.scores and not w.silent]
    # the stream judges speech by what it has heard so far, the file by all of it (live.py)
    assert len(both) >= 0.9 * sum(not w.silent for w in full)
    for u, w in both:
        for model in rec.models:
            # the same windows through the same models: float32 rounding only
            assert u.scores[model].probabilities == pytest.approx(
                w.scores[model].probabilities, abs=1e-4
            )
    cells = re.findall(r'data-start="([\d.]+)" data-end="[\d.]+" data-emotion="(\w*)"', strip)
    assert len(cells) == len(live)  # 20 s: all within the timeline's last minute
    assert [e for _, e in cells] == [u.scores[first].emotion if u.scores else "" for u in live]
    assert len(plot) == sum(u.scores is not None for u in live) * len(rec.labels)
    smoothed = live[-1].smoothed or live[-2].smoothed
    assert f"**{smoothed[first].emotion}**" in live_text(live, first) or live[-1].smoothed is None
    assert windows_html([], first, rec.labels) == '<div class="windows"></div>'
    # stopping the microphone: the mean over every window with speech (the last, shorter one
    # that stopping gives included), as `listen` ends
    ended = session
    now, session = handlers(demo)["live_stop"](ended)
    spoken = [u.scores[first].probabilities for u in ended.updates if u.scores]
    mean = {lab: np.mean([p[lab] for p in spoken]) for lab in rec.labels}
    assert session is None and f"**{max(mean, key=mean.get)}**" in now
    assert f"{len(spoken)} of {len(ended.updates)} windows" in now


@pytest.mark.skipif(not HAS_GRADIO, reason="Gradio is not installed (pip install '.[app]')")
def test_app_refuses_a_speaker_normalised_cnn():
    from types import SimpleNamespace

    from ser_cnn.serving.app import build_app

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


def load_tool():
    """tools/load_app.py as a module: it starts the app and fires clients at it."""
    spec = importlib.util.spec_from_file_location("load_app", REPO / "tools" / "load_app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["load_app"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def app_url(tmp_path):
    """`ser-cnn app` in a subprocess on a free port; its URL."""
    try:
        with load_tool().served_app([], tmp_path / "app.log") as url:
            yield url
    except RuntimeError as err:
        pytest.fail(str(err))


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
        expect(page.locator("#bars .bar")).to_have_count(len(rec.labels) * len(rec.models))
        expect(page.locator("#log_mel img")).to_be_visible()
        expect(page.locator("#timeline")).to_have_count(0)

        # a long recording: its windows on a timeline, drawn by the browser
        upload(long)
        expect(page.locator("#timeline canvas, #timeline svg").first).to_be_visible()
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


@pytest.mark.slow
@pytest.mark.skipif(not HAS_GRADIO, reason="Gradio is not installed (pip install '.[app]')")
def test_many_clients_get_an_answer_or_a_polite_refusal(rec, tmp_path):
    """12 clients at once through the Gradio API, one analysis at a time and a queue of 4:
    the first answered, the rest refused as the queue fills; every answer is the
    Recognizer's. (tools/load_app.py measures speed; this checks behaviour only.)"""
    from ser_cnn.serving.app import MODEL_NAMES

    tool = load_tool()
    expected = rec.predict(ANGRY)
    args = ["--workers", "1", "--queue", "4"]
    with tool.served_app(args, tmp_path / "app.log") as url:
        outcomes, _ = tool.fire(url, ANGRY, 12, budget=120)
    statuses = [o.status for o in outcomes]
    assert set(statuses) == {"answered", "refused"}, [o.message for o in outcomes]
    assert all("Queue is full" in o.message for o in outcomes if o.status == "refused")
    for o in outcomes:
        if o.status == "answered":
            shown = tool.verdict_scores(o.answer[1])
            assert shown == {
                MODEL_NAMES[m]: (s.emotion, round(s.probability, 2))
                for m, s in expected.scores.items()
            }


@pytest.mark.slow
@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_live_tab_in_a_browser(app_url, rec, tmp_path):
    """Chromium's fake microphone plays the five example clips (20.7 s, then silence): the
    Live tab names the model while they play, its strip gains a window every hop from the
    start of the stream, windows hear speech while the clips play and none once they have
    ended, and the timeline is drawn.

    Which emotion each window shows is not compared with the file's here: Chromium processes
    what it captures (gain control, noise suppression, resampling) differently from build to
    build, so the stream does not hear the file's samples. The Live tab's answers to the
    file's own chunks are those of its windows (test_live_tab_gives_the_windows_of_the_file).
    The fake device starts playing when the page opens the microphone, before the first chunk
    is recorded, so stream time t hears the file at t or later: from 21 s on, only silence."""
    from playwright.sync_api import expect, sync_playwright

    from ser_cnn.serving.app import MODEL_NAMES

    wav = tmp_path / "five.wav"
    y, sr = sf.read(write_long(tmp_path / "five.flac"))
    sf.write(wav, y, sr, subtype="PCM_16")
    first = rec.models[0]
    flags = [*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}%noloop"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(90_000)
        page.goto(app_url)
        page.get_by_role("tab", name="Live").click()
        page.locator("#live_mic button:visible", has_text="Record").first.click()
        # checked while the clips play: once they have ended, the latest window hears none
        expect(page.locator("#live_now")).to_contain_text(MODEL_NAMES[first], timeout=60_000)
        cells = page.locator("#live_windows i")
        expect(cells.nth(46)).to_be_attached(timeout=120_000)  # windows up to 23-26 s
        expect(page.locator("#live_timeline canvas, #live_timeline svg").first).to_be_visible()
        live = [
            (float(c.get_attribute("data-start")), c.get_attribute("data-emotion"))
            for c in cells.all()
        ]
        browser.close()
    starts = [t for t, _ in live]
    assert starts == pytest.approx([0.5 * k for k in range(len(live))]), starts  # one per hop
    playing = [e for t, e in live if t + 3.0 <= 20.7 - 8.0]  # within the clips, 8 s late or not
    assert sum(e in rec.labels for e in playing) >= len(playing) / 2, live
    ended = [e for t, e in live if t >= 21.0]
    assert ended and not any(ended), live
