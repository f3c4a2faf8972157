"""`ser-cnn listen`: a recording played live gives infer's windows; no microphone, exit 2."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from ser_cnn.audio.io import load_audio
from tests.conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("03-*"))
SER_CNN = [sys.executable, "-c", "import sys; from ser_cnn.cli import main; sys.exit(main())"]
# LiteRT, NumPy and the encoder give the same probabilities whatever the batch (windows per
# model call) within float32 rounding; the bound for "the same answer"
TOLERANCE = 1e-4


def ser_cnn(*args, timeout=300, **kwargs):
    return subprocess.run(
        [*SER_CNN, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs
    )


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    """The five example clips with 1 s pauses and room tone (-60 dBFS), 44.1 kHz 16-bit: 23 s."""
    rng = np.random.default_rng(0)
    parts = []
    for path in EXAMPLES:
        parts += [load_audio(path), np.zeros(16_000, np.float32)]
    y = np.concatenate(parts)
    y = (y + 1e-3 * rng.standard_normal(len(y))).astype(np.float32)
    path = tmp_path_factory.mktemp("listen") / "talk.wav"
    sf.write(path, load_audio(y, sr=16_000, target_sr=44_100), 44_100, subtype="PCM_16")
    return path


def probabilities(record: dict, model: str) -> list[float]:
    return list(record[model]["probabilities"].values())


def test_listen_fast_gives_the_windows_of_infer(talk):
    """Every model of the shipped run, window for window, and the overall answer."""
    infer = ser_cnn("infer", "--window", 3, "--hop", 0.5, "--format", "json", talk)
    assert infer.returncode == 0, infer.stderr
    (expected,) = json.loads(infer.stdout)
    listen = ser_cnn("listen", "--input", talk, "--fast", "--format", "jsonl")
    assert listen.returncode == 0, listen.stderr
    *updates, last = map(json.loads, listen.stdout.splitlines())
    models = [m for m in ("encoder", "cnn", "mlp") if m in expected]
    assert len(models) == 3  # the shipped run: the encoder, the CNN and the MLP
    assert len(updates) == len(expected["windows"]) > 30
    for u, w in zip(updates, expected["windows"], strict=True):
        assert (u["start"], u["end"], u["silent"]) == (w["start"], w["end"], w["silent"])
        for m in models if not w["silent"] else ():
            assert u[m]["emotion"] == w[m]["emotion"]
            np.testing.assert_allclose(probabilities(u, m), probabilities(w, m), atol=TOLERANCE)
    summary = last["summary"]
    assert summary["windows"] == len(updates)
    assert summary["speech_windows"] == sum(not w["silent"] for w in expected["windows"])
    for m in models:
        np.testing.assert_allclose(
            probabilities(summary["scores"], m), probabilities(expected, m), atol=TOLERANCE
        )


def test_listen_table_and_hop(talk):
    out = ser_cnn("listen", "--input", talk, "--fast", "--model", "cnn", "--hop", "1.5")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 15 + 1  # windows every 1.5 s of 23.2 s (and a last, shorter one)
    assert lines[0].split()[:2] == ["3.00", "s"] and "CNN" in lines[0]
    assert any("no speech" in line for line in lines)
    assert lines[-1].startswith("summary: 23.2 s, 15 windows")


def test_ctrl_c_ends_with_a_summary(talk):
    """Played in real time, Ctrl-C after the first update: the summary of what was heard, exit 0."""
    proc = subprocess.Popen(
        [*SER_CNN, "listen", "--input", str(talk), "--model", "cnn", "--format", "jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = json.loads(proc.stdout.readline())  # the first window: 3 s into the recording
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert time.monotonic() - start < 10  # it stopped: 20 s of the recording were left
    *updates, last = [first, *map(json.loads, rest.splitlines())]
    assert "summary" in last and "Traceback" not in err
    assert last["summary"]["windows"] == len(updates) < 10
    assert last["summary"]["duration"] < 10


def test_no_microphone_is_exit_2():
    """The real sounddevice on a machine without a microphone (or without PortAudio)."""
    out = ser_cnn("listen", "--model", "cnn")
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert "microphone" in out.stderr and "--input FILE" in out.stderr


def test_without_sounddevice_is_exit_2():
    code = (
        "import sys; sys.modules['sounddevice'] = None  # as if not installed\n"
        "from ser_cnn.cli import main; sys.exit(main(['listen', '--model', 'cnn']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "pip install 'ser_cnn[live]'" in out.stderr


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["--fast"], 2),  # --fast without --input
        (["--hop", "0", "--input", "x.wav"], 2),
        (["--hop", "4", "--input", "x.wav"], 2),  # more than the model's 3 s window
        (["--input", "x.wav", "--device", "1"], 2),
        (["--input", "no/such.wav", "--model", "cnn"], 1),
    ],
)
def test_usage_errors(args, status, tmp_path):
    out = ser_cnn("listen", *args, cwd=tmp_path)
    assert out.returncode == status, out.stderr
    assert "error" in out.stderr and "Traceback" not in out.stderr
