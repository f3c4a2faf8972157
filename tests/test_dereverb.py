"""The encoder's dereverberating front end (single-channel WPE) and the front end it joins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ser_cnn.audio.degrade import apply_rir
from ser_cnn.audio.denoise import DenoiseConfig, denoise, floor_snr
from ser_cnn.audio.dereverb import (
    DereverbConfig,
    dereverberate,
    istft,
    needs_dereverberation,
    stft,
    wpe,
)
from ser_cnn.audio.front_end import FrontEnd
from ser_cnn.audio.io import load_audio
from ser_cnn.audio.rooms import room_impulse_response
from ser_cnn.encoder.fit import HeadTraining
from ser_cnn.errors import ParameterError

SR = 16_000
CLIP = Path(__file__).resolve().parent.parent / "examples" / "03-01-05-02-01-01-11.flac"
EARLY = 0.05  # s of the impulse response kept as the target: the early sound of clarity C50


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_audio(CLIP, target_sr=SR)


@pytest.fixture(scope="module")
def room(speech) -> tuple[np.ndarray, np.ndarray]:
    """The clip in a 0.3 s room, and the same clip with only the room's first ``EARLY`` s."""
    h = room_impulse_response(SR, rt60=0.3, room=(7.0, 5.0, 3.0), rng=np.random.default_rng(1))
    return apply_rir(speech, h), apply_rir(speech, h[: round(EARLY * SR)])


def distance_db(y: np.ndarray, target: np.ndarray) -> float:
    """How far ``target`` stands above what is left of it after ``y``'s best scaled fit, in dB."""
    y, target = y.astype(np.float64), target.astype(np.float64)
    fit = y * (y @ target) / (y @ y)
    return float(10 * np.log10(np.sum(target**2) / np.sum((target - fit) ** 2)))


@pytest.mark.parametrize("shift", [0.008, 0.016])  # a quarter and half a frame
@pytest.mark.parametrize("n", [1, 127, 512, 4_000, 57_657])
def test_the_stft_returns_the_clip(n, shift):
    y = np.random.default_rng(n).standard_normal(n)
    back = istft(stft(y, SR, shift=shift), n, SR, shift=shift)
    np.testing.assert_allclose(back, y, atol=1e-12)  # float64 rounding


@pytest.mark.parametrize(
    ("config", "dtype", "tolerance"),
    [
        # as served: float32 sums in another order, 1e-7 of the largest bin seen; a filter off
        # by a tap or a weight is off by more than 1e-3
        (DereverbConfig(taps=20), np.complex64, 1e-5),
        # a second iteration's weights spread widely enough to make float32's rounding 1e-3:
        # the algorithm's equality is shown in double precision (4e-12 seen)
        (DereverbConfig(taps=20, delay=2, shift=0.016, iterations=2), np.complex128, 1e-9),
    ],
    ids=["as served", "two iterations"],
)
def test_the_filter_is_nara_wpes(room, config, dtype, tolerance):
    nara = pytest.importorskip("nara_wpe.wpe")  # a dev dependency: the reference only
    spectrum = stft(room[0] * 10, SR, shift=config.shift).astype(dtype).T
    spectrum[:3] = 0  # bins with nothing in them: a singular correlation, solved all the same
    ours = wpe(spectrum, config=config)
    theirs = nara.wpe(
        spectrum[:, None, :],
        taps=config.taps,
        delay=config.delay,
        iterations=config.iterations,
        statistics_mode="full",
    )[:, 0, :]
    assert ours.dtype == dtype and ours.shape == spectrum.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tolerance * np.abs(theirs).max())


@pytest.mark.parametrize(
    "config", [DereverbConfig(), DereverbConfig(taps=10, delay=2, shift=0.016)], ids=str
)
def test_wpe_takes_away_late_reverberation(room, config):
    reverberant, early = room
    out = dereverberate(reverberant, SR, config=config)
    assert out.dtype == np.float32 and out.shape == reverberant.shape
    # Measured 9.5 dB before and 10.3 after here (a filter doing nothing gains 0); WPE takes
    # away part of the late tail only, and its phase errors count too.
    assert distance_db(out, early) > distance_db(reverberant, early) + 0.3


def test_wpe_is_proportional_to_the_level_and_keeps_silence(room):
    reverberant, _ = room
    loud = dereverberate(reverberant, SR, config=DereverbConfig())
    quiet = dereverberate(reverberant * 1e-3, SR, config=DereverbConfig())
    # float32 samples, the filter computed in float64: a part in 1e5 of the loudest sample
    np.testing.assert_allclose(quiet * 1e3, loud, atol=1e-5 * np.abs(loud).max())
    silent = np.zeros(8_000, dtype=np.float32)
    assert not dereverberate(silent, SR, config=DereverbConfig()).any()


def test_dereverb_settings_are_checked_and_travel_with_the_head_training(tmp_path):
    for bad in ({"taps": 0}, {"delay": 0}, {"iterations": 0}):
        with pytest.raises(ParameterError, match="at least 1"):
            DereverbConfig(**bad)
    with pytest.raises(ParameterError, match="at most half a frame"):
        DereverbConfig(shift=0.02)  # frames overlap too little for the overlap-add
    with pytest.raises(ParameterError, match="unknown dereverb settings"):
        DereverbConfig.from_dict({"tap": 10})
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('fit = "logistic"\n\n[dereverb]\ntaps = 20\nshift = 0.016\n')
    assert FrontEnd.from_recipe(recipe) == FrontEnd(dereverb=DereverbConfig(taps=20, shift=0.016))
    recipe.write_text('fit = "logistic"\n')
    with pytest.raises(ParameterError, match="neither a \\[denoise\\] nor a \\[dereverb\\]"):
        FrontEnd.from_recipe(recipe)
    with pytest.raises(ParameterError, match="cannot read"):
        FrontEnd.from_recipe(tmp_path / "missing.toml")
    training = HeadTraining.from_dict({"dereverb": {"taps": 20}, "denoise": {"below_db": 9.0}})
    assert training.front_end == FrontEnd(
        denoise=DenoiseConfig(below_db=9.0), dereverb=DereverbConfig(taps=20)
    )
    assert HeadTraining.from_dict(training.to_dict()) == training  # as a run stores it
    assert HeadTraining.from_dict({}).front_end is None  # runs written before it: none
    assert training.front_end.to_dict() == {
        "denoise": DenoiseConfig(below_db=9.0).to_dict(),
        "dereverb": DereverbConfig(taps=20).to_dict(),
    }


def test_the_front_end_denoises_before_it_dereverberates(speech):
    noisy = speech + np.random.default_rng(0).standard_normal(len(speech)).astype(np.float32) * (
        0.3 * np.abs(speech).max()
    )
    gate = DenoiseConfig(below_db=40.0)  # open for this clip
    both = FrontEnd(denoise=gate, dereverb=DereverbConfig())
    expected = dereverberate(denoise(noisy, SR, config=gate), SR, config=DereverbConfig())
    np.testing.assert_array_equal(both(noisy, SR), expected)
    assert both.changes(speech, SR)  # WPE hears every clip
    assert not FrontEnd(denoise=DenoiseConfig(below_db=0.0)).changes(speech, SR)  # gate shut


def test_the_dereverberation_gate_reads_the_clip_as_it_arrives(room, speech):
    reverberant, _ = room
    noisy = speech + np.random.default_rng(1).standard_normal(len(speech)).astype(np.float32) * (
        0.3 * np.abs(speech).max()
    )
    quiet, loud = floor_snr(reverberant, SR), floor_snr(noisy, SR)
    assert loud < quiet  # the noise fills the pauses
    gated = DereverbConfig(above_db=(quiet + loud) / 2)
    assert needs_dereverberation(reverberant, SR, config=gated)
    assert not needs_dereverberation(noisy, SR, config=gated)
    front = FrontEnd(dereverb=gated)
    np.testing.assert_array_equal(
        front(reverberant, SR), dereverberate(reverberant, SR, config=gated)
    )
    np.testing.assert_array_equal(front(noisy, SR), noisy)  # passed through untouched
    assert front.changes(reverberant, SR) and not front.changes(noisy, SR)
    # Denoised, the noisy clip's pauses are empty, but the gate heard it before the denoiser.
    both = FrontEnd(denoise=DenoiseConfig(below_db=loud + 1.0), dereverb=gated)
    np.testing.assert_array_equal(
        both(noisy, SR), denoise(noisy, SR, config=DenoiseConfig(below_db=loud + 1.0))
    )
    assert not needs_dereverberation(reverberant[:100], SR, config=DereverbConfig())  # < 2 frames
