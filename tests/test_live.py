"""Live streams (ser_cnn.serving.live): the windows of a long recording, given as the audio
arrives."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from ser_cnn.audio.io import load_audio
from ser_cnn.errors import AudioError, ParameterError
from ser_cnn.serving.inference import load_recognizer
from ser_cnn.serving.live import LiveStream, microphone, play
from tests.conftest import REPO, voice
from tests.test_inference import SERVING

EXAMPLES = sorted((REPO / "examples").glob("03-*"))
# LiteRT and NumPy give the same probabilities whatever the batch (windows per model call)
# within float32 rounding; the bound for "the same answer"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def rec():
    return load_recognizer(models=["cnn", "mlp"], runtime="light")


@pytest.fixture(scope="module")
def monologue():
    """The five example clips with 1 s pauses and room tone (-60 dBFS) throughout, at 44.1 kHz:
    23 s, long enough to be windowed, with windows of room tone alone."""
    rng = np.random.default_rng(0)
    parts = []
    for path in EXAMPLES:
        parts += [load_audio(path), np.zeros(16_000, np.float32)]
    y = np.concatenate(parts)
    y = (y + 1e-3 * rng.standard_normal(len(y))).astype(np.float32)
    return load_audio(y, sr=16_000, target_sr=44_100), 44_100


def blocks_of(y: np.ndarray, sizes) -> list[np.ndarray]:
    """``y`` cut into consecutive blocks of the given sizes (the last takes the rest)."""
    cuts = np.cumsum(sizes)
    return np.split(y, cuts[cuts < len(y)])


def run_stream(rec, blocks, sr, **kwargs):
    stream = LiveStream(rec, **kwargs)
    updates = [u for block in blocks for u in stream.push(block, sr)]
    summary = stream.close()
    return updates + summary.last, summary


def vector(scores) -> np.ndarray:
    return np.array(list(scores.probabilities.values()))


def assert_same(updates, others, atol: float = 1e-6) -> None:
    """The same windows, the same verdicts, and every probability within ``atol``: windows
    scored in other batches may differ in float32's last bits (BLAS blocking differs by CPU;
    5e-8 seen), a window that heard other audio by far more."""
    assert len(updates) == len(others)
    for u, v in zip(updates, others, strict=True):
        assert (u.start, u.end) == pytest.approx((v.start, v.end), abs=1e-9)
        for mine, theirs in ((u.scores, v.scores), (u.smoothed, v.smoothed)):
            assert (mine is None) == (theirs is None)
            for m in mine or ():
                np.testing.assert_allclose(vector(mine[m]), vector(theirs[m]), atol=atol)


@pytest.mark.parametrize("hop", [0.5, 1.5])
def test_windows_and_probabilities_are_those_of_a_long_recording(rec, monologue, tmp_path, hop):
    y, sr = monologue
    sf.write(tmp_path / "talk.wav", y, sr, subtype="FLOAT")
    p = rec.predict(tmp_path / "talk.wav", window=3.0, hop=hop)
    rng = np.random.default_rng(1)
    blocks = blocks_of(y, rng.integers(1, sr // 2, size=len(y)))  # uneven blocks, 0-0.5 s
    updates, summary = run_stream(rec, blocks, sr, window=3.0, hop=hop)
    np.testing.assert_allclose(
        [(u.start, u.end) for u in updates], [(w.start, w.end) for w in p.windows], atol=1e-9
    )
    # on this recording the live speech rule (what was heard so far) agrees with the file's
    # (the whole recording), so every window is judged alike
    assert [u.scores is None for u in updates] == [w.silent for w in p.windows]
    assert any(w.silent for w in p.windows) and not all(w.silent for w in p.windows)
    for u, w in zip(updates, p.windows, strict=True):
        for m in rec.models if u.scores else ():
            np.testing.assert_allclose(vector(u.scores[m]), vector(w.scores[m]), atol=TOLERANCE)
    for m in rec.models:
        np.testing.assert_allclose(vector(summary.scores[m]), vector(p.scores[m]), atol=TOLERANCE)
    assert summary.windows == len(p.windows)
    assert summary.speech_windows == sum(not w.silent for w in p.windows)
    assert summary.duration == pytest.approx(len(y) / sr, abs=1e-3)


def test_answers_do_not_depend_on_the_blocks(rec, monologue):
    y, sr = monologue
    whole, _ = run_stream(rec, [y], sr)
    small, _ = run_stream(rec, blocks_of(y, np.full(len(y), 1000)), sr)
    assert_same(whole, small, atol=TOLERANCE)
    assert len(whole) > 30  # a window every 0.5 s


def test_each_window_is_judged_by_what_came_before_it(rec, monologue):
    """An update never changes with audio that follows it: the updates of the first 12 s are
    those of the whole recording's first 12 s, although the rest holds louder speech."""
    y, sr = monologue
    loud = np.concatenate([y, 4 * y[: 6 * sr]])  # a louder passage after the end
    early, _ = run_stream(rec, [y[: 12 * sr]], sr)
    full, _ = run_stream(rec, [loud], sr)
    done = [u for u in early if u.end <= 12.0 - 0.5]  # not the shorter last one of the prefix
    assert_same(done, full[: len(done)])


def test_live_speech_rule_is_the_file_rule_on_the_recording_so_far(rec):
    """Each window's verdict is the one a file of the recording up to its end gets for its last
    window (Recognizer.predict); where a louder passage follows, the whole file's may differ."""
    sr = 16_000
    rng = np.random.default_rng(0)
    clips = [load_audio(path) for path in EXAMPLES[:3]]
    quiet = np.concatenate([c for clip in clips for c in (0.05 * clip, np.zeros(sr // 2))])
    y = np.concatenate([quiet, *clips]).astype(np.float32)  # softly, then aloud
    y += (3e-4 * rng.standard_normal(len(y))).astype(np.float32)
    updates, _ = run_stream(rec, [y], sr, hop=1.5)
    whole = rec.predict(y, sr=sr, hop=1.5)
    assert [u.scores is None for u in updates] != [w.silent for w in whole.windows]
    checked = 0
    for u in updates[:-1]:  # the last, shorter window is the file's own last one
        so_far = rec.predict(y[: round(u.end * sr)], sr=sr, hop=1.5)
        if not so_far.windows:  # too little speech yet for a file to be windowed
            continue
        if not any(w.silent for w in so_far.windows):
            # a file in which no window holds speech by the rule counts every voiced window
            # (so it always gets an answer); a stream cannot know that no speech will follow
            continue
        assert so_far.windows[-1].end == pytest.approx(u.end, abs=1e-9)
        assert (u.scores is None) == so_far.windows[-1].silent
        checked += 1
    assert checked >= 5


def test_smoothed_answer_averages_the_recent_windows_with_speech(rec, monologue):
    y, sr = monologue
    updates, summary = run_stream(rec, [y], sr, hop=0.5, smooth=2.0)
    for u in updates:
        recent = [v for v in updates if v.scores and u.end - 2.0 < v.end <= u.end]
        if not recent:
            assert u.smoothed is None
            continue
        for m in rec.models:
            mean = np.mean([vector(v.scores[m]) for v in recent], axis=0)
            np.testing.assert_allclose(vector(u.smoothed[m]), mean, atol=1e-9)
    spoken = [u for u in updates if u.scores]
    for m in rec.models:
        mean = np.mean([vector(u.scores[m]) for u in spoken], axis=0)
        np.testing.assert_allclose(vector(summary.scores[m]), mean, atol=1e-9)
        assert summary.scores[m].emotion == rec.labels[int(np.argmax(mean))]


def test_no_answer_while_nobody_speaks(rec):
    sr = 16_000
    rng = np.random.default_rng(0)
    tone = (1e-3 * rng.standard_normal(8 * sr)).astype(np.float32)  # room tone, -60 dBFS
    speech = np.concatenate([voice(sr=sr, seconds=1.4, seed=i) for i in range(3)])
    y = np.concatenate([np.zeros(4 * sr, np.float32), speech, tone])
    updates, _ = run_stream(rec, [y], sr)
    silent = [u for u in updates if u.end <= 4.0]  # digital silence only
    assert silent and all(u.scores is None and u.smoothed is None for u in silent)
    toned = [u for u in updates if u.start >= 4.0 + len(speech) / sr]  # room tone only
    assert toned and all(u.scores is None for u in toned)
    assert any(u.scores for u in updates)
    quiet, nothing = run_stream(rec, [np.zeros(10 * sr, np.float32)], sr)
    assert quiet and all(u.scores is None for u in quiet)
    assert nothing.scores is None and nothing.speech_windows == 0


def test_short_stream_and_integer_stereo_input(rec):
    sr = 48_000
    short, summary = run_stream(rec, [np.zeros(sr // 2, np.float32)], sr)
    assert short == [] and summary.windows == 0 and summary.scores is None
    y = (voice(sr=sr, seconds=3.5) * 32767).astype(np.int16)
    stereo = np.stack([y, y], axis=1)
    updates, _ = run_stream(rec, blocks_of(stereo, np.full(len(y), 4800)), sr)
    mono, _ = run_stream(rec, [y.astype(np.float32) / 32768], sr)
    assert_same(updates, mono, atol=TOLERANCE)


def test_stream_refuses_bad_input(rec):
    with pytest.raises(ParameterError, match="smooth"):
        LiveStream(rec, smooth=0)
    with pytest.raises(ParameterError, match="hop"):
        LiveStream(rec, hop=5.0)
    stream = LiveStream(rec)
    stream.push(np.zeros(100, np.float32), 16_000)
    with pytest.raises(ParameterError, match="sr changed"):
        stream.push(np.zeros(100, np.float32), 44_100)
    with pytest.raises(AudioError, match="NaN"):
        stream.push(np.full(100, np.nan, np.float32), 16_000)
    stream.close()
    with pytest.raises(ParameterError, match="after close"):
        stream.push(np.zeros(100, np.float32), 16_000)


def test_play_paces_a_file_in_real_time(monologue, tmp_path):
    y, sr = monologue
    sf.write(tmp_path / "talk.wav", y[:sr], sr)  # 1 s
    fast = list(play(tmp_path / "talk.wav", sr=16_000, block=0.25, realtime=False))
    assert sum(map(len, fast)) == pytest.approx(16_000, abs=2)  # the resampler's rounding
    start = time.monotonic()
    paced = list(play(tmp_path / "talk.wav", sr=16_000, block=0.25, start=start))
    assert sum(map(len, paced)) == sum(map(len, fast))
    assert time.monotonic() - start >= 1.0 - 1e-3  # never ahead of the recording


def test_no_microphone_is_a_clear_error():
    """This machine has no microphone: the real sounddevice says so (no PortAudio library, or
    no input device), as an AudioError that says what to do."""
    with pytest.raises(AudioError, match=r"microphone|PortAudio|sounddevice") as err:
        next(microphone())
    assert "--input FILE" in str(err.value) or "allowed" in str(err.value)


def test_live_stream_is_serving_code():
    """A stream with the light runtime loads no TensorFlow, Keras or scikit-learn, and of
    ser_cnn only the serving modules (tests/test_inference.py's list)."""
    code = (
        "import sys, numpy as np\n"
        "from ser_cnn.serving.inference import load_recognizer\n"
        "from ser_cnn.serving.live import LiveStream\n"
        "s = LiveStream(load_recognizer(runtime='light'))\n"
        "s.push(np.zeros(16_000 * 4, np.float32), 16_000); s.close()\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'sklearn', 'ser_cnn'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    loaded = set(out.stdout.split())
    assert "ser_cnn.serving.live" in loaded
    assert loaded <= {*SERVING, "ser_cnn.serving.live"}, loaded - SERVING
