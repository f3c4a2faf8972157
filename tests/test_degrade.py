"""ser_cnn/audio/degrade.py and tools/robustness.py: degradations measured on synthetic signals, the
benchmark's conditions, and the cross-corpus name reading; a smoke run needs RAVDESS_DIR."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pyroomacoustics as pra
import pytest
import scipy.signal

from ser_cnn.audio import conditions, degradations, degrade, rooms
from ser_cnn.errors import DataError, NameFormatError, ParameterError
from tests.conftest import REPO, voice

SR = 16_000


def _load_tool():
    spec = importlib.util.spec_from_file_location("robustness", REPO / "tools" / "robustness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


robustness = _load_tool()


def speech(seconds: float = 2.0, *, f0: float = 150.0, silence: float = 0.5) -> np.ndarray:
    """A steady harmonic tone up to 7.5 kHz between ``silence`` s of zeros: the active part is
    known exactly (``silence`` is a whole number of FRAME-long frames)."""
    t = np.arange(round(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, int(7500 / f0) + 1))
    gap = np.zeros(round(silence * SR))
    return np.concatenate([gap, 0.1 * tone / np.max(np.abs(tone)), gap]).astype(np.float32)


def rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))


def band_db(x: np.ndarray, lo: float, hi: float) -> float:
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return 10 * np.log10(power[(f >= lo) & (f < hi)].sum())


@pytest.fixture(scope="module")
def pool() -> list[np.ndarray]:
    """Six synthetic talkers for babble."""
    return [voice(seconds=1.5, f0=f0, seed=i) for i, f0 in enumerate((95, 120, 140, 190, 220, 260))]


def test_gain_changes_rms_by_exactly_the_db_and_can_refuse_to_clip():
    y = speech()
    for db in (-20.0, 6.0):
        assert rms_db(degrade.gain(y, db)) - rms_db(y) == pytest.approx(db, abs=1e-4)
    loud = degrade.gain(y, 30.0, max_peak=1.0)
    assert np.max(np.abs(loud)) == pytest.approx(1.0, abs=1e-6)
    assert loud.dtype == np.float32


@pytest.mark.parametrize("kind", degrade.NOISE_KINDS)
def test_add_noise_hits_the_snr_over_the_speech_whatever_the_silence(kind, pool):
    for silence in (0.5, 2.0):  # more silence around the speech must not change the noise level
        y = speech(silence=silence)
        speaking = slice(round(silence * SR), len(y) - round(silence * SR))
        out = degrade.add_noise(
            y, SR, snr_db=10.0, kind=kind, rng=np.random.default_rng(0), babble=pool
        )
        noise = out.astype(np.float64) - y
        snr = rms_db(y[speaking]) - rms_db(noise[speaking])
        assert snr == pytest.approx(10.0, abs=0.5), (kind, silence)
        assert out.dtype == np.float32 and len(out) == len(y)


def test_noise_colours_have_their_spectral_slopes_and_hum_its_mains_frequency():
    slopes = {}
    for kind in ("white", "pink", "brown"):
        x = degrade.make_noise(4 * SR, SR, kind=kind, rng=np.random.default_rng(1))
        f, p = scipy.signal.welch(x, SR, nperseg=4096)
        band = (f >= 100) & (f <= 4000)
        slopes[kind] = np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0]
        assert np.sqrt(np.mean(np.square(x, dtype=np.float64))) == pytest.approx(1.0, rel=1e-4)
    assert slopes == pytest.approx({"white": 0.0, "pink": -1.0, "brown": -2.0}, abs=0.15)
    hum = degrade.make_noise(4 * SR, SR, kind="hum", rng=np.random.default_rng(1))
    f, p = scipy.signal.welch(hum, SR, nperseg=SR)
    assert f[np.argmax(p)] == pytest.approx(degrade.MAINS_HZ, abs=1.0)


def test_add_noise_refuses_what_it_cannot_make():
    y = speech()
    with pytest.raises(ParameterError, match="babble"):
        degrade.add_noise(y, SR, snr_db=10, kind="babble", rng=np.random.default_rng(0))
    with pytest.raises(ParameterError, match="noise kind"):
        degrade.add_noise(y, SR, snr_db=10, kind="traffic", rng=np.random.default_rng(0))
    with pytest.raises(ParameterError, match="silence"):
        degrade.add_noise(
            np.zeros(SR, np.float32), SR, snr_db=10, kind="white", rng=np.random.default_rng(0)
        )


@pytest.mark.parametrize("mu_law", [False, True])
def test_telephone_keeps_300_to_3400_hz_only(mu_law):
    x = (0.1 * np.random.default_rng(0).standard_normal(2 * SR)).astype(np.float32)
    out = degrade.telephone(x, SR, mu_law=mu_law)
    assert len(out) == len(x) and out.dtype == np.float32
    assert band_db(out, 0, 200) - band_db(x, 0, 200) < -25
    assert band_db(out, 3600, 8000) - band_db(x, 3600, 8000) < -40
    assert band_db(out, 500, 3000) - band_db(x, 500, 3000) == pytest.approx(0, abs=0.5)


def test_lowpass_removes_what_lies_above_the_cutoff():
    x = (0.1 * np.random.default_rng(0).standard_normal(2 * SR)).astype(np.float32)
    out = degrade.lowpass(x, SR, cutoff_hz=4000)
    assert band_db(out, 5000, 8000) - band_db(x, 5000, 8000) < -50
    assert band_db(out, 100, 3500) - band_db(x, 100, 3500) == pytest.approx(0, abs=0.5)
    with pytest.raises(ParameterError):
        degrade.lowpass(x, SR, cutoff_hz=9000)


def test_reverb_keeps_length_and_level_and_a_longer_rt60_rings_longer():
    burst = np.zeros(round(1.5 * SR), np.float32)
    burst[: round(0.3 * SR)] = speech(0.3, silence=0)
    tails = {}
    for rt60, room in ((0.3, (6.3, 4.9, 2.8)), (0.8, (10.0, 8.0, 5.0))):
        out = degrade.reverb(burst, SR, rt60=rt60, room=room, rng=np.random.default_rng(0))
        assert len(out) == len(burst) and out.dtype == np.float32
        assert rms_db(out) == pytest.approx(rms_db(burst), abs=0.01)
        tails[rt60] = rms_db(out[round(0.6 * SR) :]) - rms_db(out)
        h = rooms.room_impulse_response(SR, rt60=rt60, room=room, rng=np.random.default_rng(1))
        assert pra.experimental.measure_rt60(h, fs=SR, decay_db=20) == pytest.approx(rt60, rel=0.3)
    assert tails[0.8] > tails[0.3] + 10
    again = degrade.reverb(burst, SR, rt60=0.3, room=(6.3, 4.9, 2.8), rng=np.random.default_rng(0))
    first = degrade.reverb(burst, SR, rt60=0.3, room=(6.3, 4.9, 2.8), rng=np.random.default_rng(0))
    np.testing.assert_array_equal(again, first)
    with pytest.raises(ParameterError, match="impossible"):
        degrade.reverb(burst, SR, rt60=0.05, room=(10.0, 8.0, 5.0), rng=np.random.default_rng(0))


@pytest.mark.parametrize("kind", list(degrade.CODECS))
def test_codec_round_trip_is_lossy_but_aligned_and_of_the_same_length(kind):
    y = speech(1.5, f0=170.0, silence=0.25)
    out = degrade.codec(y, SR, kind=kind)
    assert len(out) == len(y) and out.dtype == np.float32
    assert not np.array_equal(out, y)
    lags = range(-20, 21)
    assert max(lags, key=lambda lag: np.dot(np.roll(out, lag), y)) in range(-3, 4)
    assert np.corrcoef(out, y)[0, 1] > 0.9


def test_codec_that_libsndfile_cannot_write_is_a_parameter_error(monkeypatch):
    monkeypatch.setitem(degrade.CODECS, "vorbis-in-wav", ("WAV", "VORBIS", None, None))
    with pytest.raises(ParameterError, match="cannot write"):
        degrade.codec(speech(), SR, kind="vorbis-in-wav")
    with pytest.raises(ParameterError, match="codec kind"):
        degrade.codec(speech(), SR, kind="aac")


def test_speed_scales_duration_and_pitch():
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    fast = degrade.speed(tone, SR, factor=1.1)
    assert len(fast) == pytest.approx(SR / 1.1, abs=1)
    f = np.fft.rfftfreq(len(fast), 1 / SR)
    assert f[np.argmax(np.abs(np.fft.rfft(fast)))] == pytest.approx(484, abs=2)


def test_pad_adds_room_tone_not_digital_silence():
    y = speech(1.0, silence=0)
    out = degrade.pad(y, SR, before=0.3, after=2.0, tone_db=-60, rng=np.random.default_rng(0))
    before, after = round(0.3 * SR), round(2.0 * SR)
    assert len(out) == len(y) + before + after
    np.testing.assert_array_equal(out[before : before + len(y)], y)
    tone = np.concatenate([out[:before], out[before + len(y) :]])
    assert np.count_nonzero(tone == 0) < 5
    assert rms_db(tone) == pytest.approx(-60, abs=0.1)


def test_augment_is_seeded_switchable_and_never_clips(pool):
    y = degrade.gain(voice(seconds=1.5, seed=3), 0.0)
    a = degrade.augment(y, SR, rng=np.random.default_rng(7), babble=pool)
    b = degrade.augment(y, SR, rng=np.random.default_rng(7), babble=pool)
    c = degrade.augment(y, SR, rng=np.random.default_rng(8), babble=pool)
    np.testing.assert_array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)
    np.testing.assert_array_equal(degrade.augment(y, SR, rng=np.random.default_rng(7), kinds=()), y)
    loud = degrade.gain(y, 40.0, max_peak=0.99)
    for seed in range(6):
        out = degrade.augment(loud, SR, rng=np.random.default_rng(seed), babble=pool)
        assert out.dtype == np.float32 and np.isfinite(out).all()
        assert np.max(np.abs(out)) <= 1.0 + 1e-6
    # each kind draws from its own stream: adding gain to padding leaves the padding as it was
    for seed in range(40):
        padded = degrade.augment(y, SR, rng=np.random.default_rng(seed), kinds=["pad"])
        both = degrade.augment(y, SR, rng=np.random.default_rng(seed), kinds=["pad", "gain"])
        if len(padded) > len(y) and not np.array_equal(both, padded):
            break
    else:
        pytest.fail("no seed in range(40) applies both padding and gain")
    loudest = np.argmax(np.abs(padded))
    scale = both[loudest] / padded[loudest]
    np.testing.assert_allclose(both, padded * scale, rtol=1e-4, atol=1e-7)
    # a higher probability of a kind keeps every clip that had it as it was and degrades more
    noisy = dict(p=degrade.AUGMENT_P | {"noise": 0.9}, kinds=["noise"])
    kept = added = 0
    for seed in range(20):
        before = degrade.augment(y, SR, rng=np.random.default_rng(seed), kinds=["noise"])
        after = degrade.augment(y, SR, rng=np.random.default_rng(seed), **noisy)
        if not np.array_equal(before, y):
            np.testing.assert_array_equal(after, before)
            kept += 1
        added += not np.array_equal(after, y) and np.array_equal(before, y)
    assert kept and added
    quiet = degrade.augment(y, SR, rng=np.random.default_rng(1), snr_range=(0.0, 0.1), **noisy)
    snr = 10 * np.log10(np.mean(y**2) / np.mean((quiet - y) ** 2))
    assert snr < 3  # noise at 0-0.1 dB over the active speech: about as loud as the whole clip
    with pytest.raises(ParameterError, match="unknown"):
        degrade.augment(y, SR, rng=np.random.default_rng(0), kinds=["echo"])


def test_every_condition_returns_finite_float32_and_leaves_its_input_alone(pool):
    y = voice(seconds=2.0, pad=0.5)
    copy = y.copy()
    for i, (name, condition) in enumerate(conditions.CONDITIONS.items()):
        out = condition(y, SR, np.random.default_rng([0, i]), babble=pool)
        again = condition(y, SR, np.random.default_rng([0, i]), babble=pool)
        assert out.dtype == np.float32 and np.isfinite(out).all(), name
        extra = round(2.3 * SR) if name == "room-tone padding" else 0
        assert len(out) == len(y) + extra, name
        np.testing.assert_array_equal(out, again)
        assert np.max(np.abs(out)) <= 1.0, name
    np.testing.assert_array_equal(y, copy)
    described = conditions.describe_conditions()
    assert list(described) == list(conditions.CONDITIONS)
    json.dumps(described)


def test_benchmark_keeps_rooms_noise_and_codec_that_training_never_sees():
    assert not set(rooms.TRAIN_ROOMS) & set(conditions.BENCHMARK_ROOMS)
    assert not set(rooms.TRAIN_ROOMS.values()) & set(conditions.BENCHMARK_ROOMS.values())
    assert conditions.UNSEEN_NOISE not in degrade.TRAIN_NOISES
    assert conditions.BENCHMARK_CODEC != degrade.TRAIN_CODEC
    kinds = {c.keywords.get("kind") for c in conditions.CONDITIONS.values()}
    assert conditions.UNSEEN_NOISE in kinds and conditions.BENCHMARK_CODEC in kinds


def test_every_kind_is_named_once_in_ser_cnn_degradations():
    """degrade, conditions, config, augment and the tools take the kinds' names from
    ser_cnn.audio.degradations; the chain's order there is the order of its random streams."""
    assert tuple(degrade.AUGMENT_P) == degradations.CHAIN_KINDS
    assert tuple(degrade.CODECS) == degradations.CODEC_KINDS
    assert tuple(degrade.COLOUR_EXPONENTS) == degradations.COLOURS
    assert set(degradations.TRAIN_NOISES) < set(degradations.NOISE_KINDS)
    assert degradations.UNSEEN_NOISE in degradations.NOISE_KINDS
    assert {degradations.TRAIN_CODEC, degradations.BENCHMARK_CODEC} < set(degrade.CODECS)
    for name, condition in conditions.CONDITIONS.items():
        kind = condition.keywords.get("kind")
        if condition.func.__name__ == "_with_noise":
            assert kind in degradations.NOISE_KINDS, name
        elif kind is not None:
            assert kind in degradations.CODEC_KINDS, name
    with pytest.raises(ParameterError, match="known: speed, reverb, pad, noise, gain, band"):
        degrade.augment(speech(), SR, rng=np.random.default_rng(0), kinds=["padding"])


def test_a_config_names_its_degradations_without_loading_the_audio_code():
    code = (
        "import sys\n"
        "from ser_cnn.config import TrainConfig\n"
        "TrainConfig(degradations=['noise', 'band'], degradation_p={'pad': 0.5})\n"
        "print(sorted(m for m in ('ser_cnn.audio.degrade', 'ser_cnn.audio.rooms', "
        "'pyroomacoustics', "
        "'scipy.signal', 'soxr') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_bad_samples_are_refused():
    for bad in (np.zeros((2, 100), np.float32), np.arange(100), np.array([np.nan, 1.0])):
        with pytest.raises(ParameterError):
            degrade.gain(bad, 3.0)
    with pytest.raises(ParameterError, match="sr"):
        degrade.speed(speech(), 16000.5, factor=1.0)


# -- tools/robustness.py ------------------------------------------------------------------------


def test_cross_corpus_names_give_their_emotions():
    read = robustness.corpus_emotion
    assert read("urdu", "Angry/SM1_F01_A12.flac") == "angry"
    assert read("urdu", "SF10_F2_S02.wav") == "sad"
    assert read("urdu", "SM7_F03_N011.flac") == "neutral"
    assert read("ased", "05Angry/a5-03-01-02-50.flac") == "angry"
    assert read("ased", "S4-04-02-01-29.flac") == "sad"  # one upper-case letter in ASED
    assert read("ased", "f2-01-01-01-01.flac") == "fearful"
    for corpus, name in (
        ("ased", "a4-01-01-01-01.flac"),  # letter and folder number disagree
        ("ased", "03-01-05-01-01-01-01.flac"),
        ("urdu", "SM1_F01_X12.flac"),
        ("urdu", "a5-03-01-02-50.flac"),
    ):
        with pytest.raises(NameFormatError):
            read(corpus, name)


def test_corpus_folders_are_read_or_skipped(tmp_path):
    (tmp_path / "Sad").mkdir()
    (tmp_path / "Sad" / "SM2_F01_S01.flac").write_bytes(b"")
    assert robustness.read_corpus("urdu", tmp_path, None, 0) == [
        (tmp_path / "Sad" / "SM2_F01_S01.flac", "sad")
    ]
    assert "skipped" in robustness.read_corpus("ased", tmp_path / "absent", None, 0)


def test_split_actors_and_folds_are_read_from_configs_of_either_format(tmp_path):
    old, new = tmp_path / "old", tmp_path / "cv"
    (old / "cnn").mkdir(parents=True)
    (old / "cnn" / "config.json").write_text(
        json.dumps({"format": 1, "split": {"fold": 1, "test": [21, 1, 11, 20], "val": [9, 4]}})
    )
    for k in (1, 2, 10):
        (new / f"fold{k}").mkdir(parents=True)
        split = {"kind": "actor-wise", "fold": k} | ({"test": [4, 10, 12, 14]} if k == 2 else {})
        (new / f"fold{k}" / "config.json").write_text(json.dumps({"format": 2, "split": split}))
    assert robustness.split_actors(old) == (1, 11, 20, 21)
    assert robustness.split_actors(old, "validation") == (4, 9)
    assert list(robustness.fold_runs(new)) == ["cv/fold1", "cv/fold2", "cv/fold10"]
    assert robustness.split_actors(new / "fold2") == (4, 10, 12, 14)
    assert robustness.split_actors(new / "fold1") == (1, 11, 20, 21)  # from the fold number
    with pytest.raises(DataError, match="validation actors"):  # not derivable from the fold
        robustness.split_actors(new / "fold1", "validation")
    assert robustness.fold_runs(old) == {"old": old}
    with pytest.raises(DataError):
        robustness.fold_runs(tmp_path / "old" / "nothing")


def test_table_has_a_row_per_condition_and_corpus():
    fold = {"n": 8, "accuracy": 0.5, "uar": 0.5, "macro_f1": 0.5, "changed": 0.25}
    summary = {"mean": fold, "std": dict.fromkeys(fold, 0.0), "folds": {"f1": fold}}
    entry = {
        "conditions": {"clean": {"cnn": summary}, "white 5 dB": {"cnn": summary}},
        "cross_corpus": {"urdu": {"cnn": summary}, "ased": {"skipped": "absent"}},
    }
    text = robustness.table({"labels": {"today": entry}})
    assert "| today CNN |" in text
    assert "| white 5 dB | 0.500 · 25 % changed |" in text
    assert "| ased UAR (5 emotions, calm → neutral) | skipped |" in text


def test_entries_scored_apart_pool_into_one(tmp_path):
    def entry(fold: str, accuracy: float) -> dict:
        s = {"n": 8, "accuracy": accuracy, "uar": accuracy, "macro_f1": accuracy}
        one = robustness._summary({fold: s | {"changed": accuracy / 2}})
        return {
            "runs": [fold],
            "folds": {fold: {"run": fold}},
            "conditions": {"clean": {"cnn": one}},
            "cross_corpus": {"urdu": {"clips": 4, "cnn": robustness._summary({fold: s})}},
            "skipped": [],
            "part": "test",
            "limit": None,
            "seed": 0,
        }

    out = tmp_path / "r.json"
    out.write_text(
        json.dumps({"labels": {"a": entry("cv/fold1", 0.5), "b": entry("cv/fold2", 0.7)}})
    )
    assert robustness.main(["--merge", "a", "b", "--label", "both", "--out", str(out)]) == 0
    labels = json.loads(out.read_text())["labels"]
    assert list(labels) == ["both"]
    clean = labels["both"]["conditions"]["clean"]["cnn"]
    assert clean["mean"]["accuracy"] == pytest.approx(0.6)
    assert clean["std"]["accuracy"] == pytest.approx(0.1)
    assert clean["mean"]["changed"] == pytest.approx(0.3)
    assert labels["both"]["cross_corpus"]["urdu"]["clips"] == 4
    assert sorted(labels["both"]["folds"]) == ["cv/fold1", "cv/fold2"]
    with pytest.raises(DataError, match="two of the entries"):
        robustness.merge([entry("cv/fold1", 0.5), entry("cv/fold1", 0.6)])
    # one label: a new name, the entry as it was scored (its stamps too)
    stamped = labels["both"]
    assert robustness.main(["--merge", "both", "--label", "renamed", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["labels"] == {"renamed": stamped}


@pytest.mark.slow
@pytest.mark.dataset
def test_benchmark_smoke_run_on_the_shipped_model(ravdess_dir, tmp_path):
    out = tmp_path / "robustness.json"
    env = os.environ | {"RAVDESS_DIR": str(ravdess_dir), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        str(REPO / "tools" / "robustness.py"),
        str(REPO / "checkpoints" / "ravdess_fold1"),
        "--label",
        "smoke",
        "--out",
        str(out),
        "--limit",
        "8",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    entry = json.loads(out.read_text())["labels"]["smoke"]
    assert list(entry["conditions"]) == list(conditions.CONDITIONS)
    assert entry["folds"]["ravdess_fold1"]["test_actors"] == [1, 11, 20, 21]
    for corpus in ("urdu", "ased"):
        scored = entry["cross_corpus"][corpus]
        assert "skipped" in scored or "cnn" in scored
        if "cnn" in scored:  # the shipped encoder head trained on every clip of them: not scored
            assert "encoder" not in scored
            note = f"ravdess_fold1: encoder trained on {corpus}, not scored on it"
            assert note in entry["skipped"]
    assert out.with_suffix(".png").is_file()
