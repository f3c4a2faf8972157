"""A hall's late reverberation taken away before the encoder: single-channel WPE.

In a large room each syllable rings on into the next, and the encoder's head, though its
training copies hold rooms up to RT60 = 1 s, loses most in the benchmark's hall. Weighted
prediction error (Nakatani et al. 2010, Yoshioka and Nakatani 2012) predicts each STFT
frequency's late reverberation from the frames ``delay`` and more before it, weighting frames
by the inverse of the dereverberated power estimated so far, and takes the prediction away:
a linear filter of the clip's own past, so the direct sound and early reflections (within
``delay`` frames) are kept and nothing is learnt from other clips. The filter is nara-wpe's
``wpe`` (MIT, Drude et al. 2018) for one channel and one clip, written again here
(:func:`wpe`, equal to it within float32 rounding by test) so that it runs a block of
frequencies at a time in memory that stays warm: filling fresh memory for a whole clip's
stacked past frames cost more than the arithmetic. The STFT around it is SciPy's FFT, which
the features already load. WPE models reverberant speech
without added noise; where noise fills the pauses it predicts the noise, so a gate
(:func:`needs_dereverberation`) may keep it to clips whose pauses are quiet, read by the
denoiser's noise-floor SNR. Part of a run's front end (:mod:`ser_cnn.audio.front_end`), as
:mod:`ser_cnn.audio.denoise` is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from ser_cnn.audio.denoise import floor_snr, has_floor
from ser_cnn.errors import ParameterError
from ser_cnn.settings import Settings

FRAME = 0.032  # s: STFT frames (512 samples at 16 kHz, nara-wpe's 16 kHz setting)
LEVEL_RMS = 0.1  # the clip is brought to this RMS for the filter and back: WPE's power floor
# is absolute, so this keeps the output proportional to the input at any recording level
BLOCK = 32  # frequencies filtered together: about 1 MB of past frames for a 4 s clip, which
# stays in cache and in memory already touched (a whole clip's 10 MB took twice the time)
POWER_FLOOR = 1e-10  # of the clip's largest power: the weights' ceiling, as nara-wpe's


@dataclass(frozen=True)
class DereverbConfig(Settings):
    """How :func:`dereverberate` predicts the reverberation.

    Attributes
    ----------
    taps : int
        Frames of the past the prediction uses (each ``shift`` s): at 8 ms, 10 taps reach
        80 ms beyond the delay, 20 taps 160 ms.
    delay : int
        Frames skipped before the prediction (3 at 8 ms: 24 ms), whose direct sound and early
        reflections are kept.
    iterations : int
        Rounds of the power estimate and the filter; each costs as much as the first.
    above_db : float or None
        Gate: a clip is dereverberated only when its :func:`~ser_cnn.audio.denoise.floor_snr`
        is at least this, in dB; None: every clip.
    shift : float
        Seconds between STFT frames (each ``FRAME`` long): a quarter frame by default; half
        a frame sees half the frames, and the same reach needs half the taps.
    """

    TABLE = "dereverb"

    taps: int = 10
    delay: int = 3
    iterations: int = 1
    above_db: float | None = None
    shift: float = 0.008  # s

    def __post_init__(self) -> None:
        if min(self.taps, self.delay, self.iterations) < 1:
            raise ParameterError(
                "dereverb taps, delay and iterations must each be at least 1, got "
                f"taps = {self.taps}, delay = {self.delay}, iterations = {self.iterations}"
            )
        if not 0 < self.shift <= FRAME / 2:
            raise ParameterError(
                f"dereverb shift must be above 0 and at most half a frame ({FRAME / 2} s), "
                f"got {self.shift}"
            )


def needs_dereverberation(y: np.ndarray, sr: int, *, config: DereverbConfig) -> bool:
    """Whether a front end dereverberates ``y``: its noise floor at least ``config.above_db``
    below its speech (when set), and the clip at least two floor frames long."""
    return has_floor(y, sr) and (config.above_db is None or floor_snr(y, sr) >= config.above_db)


def dereverberate(y: np.ndarray, sr: int, *, config: DereverbConfig) -> np.ndarray:
    """``y`` with its late reverberation predicted and taken away, whatever its gate says
    (:func:`needs_dereverberation` is the front end's to ask).

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Samples at ``sr`` Hz.
    sr : int
        Sample rate in Hz.
    config : DereverbConfig

    Returns
    -------
    np.ndarray, shape (n,), float32
        The same length; digital silence stays silent.
    """
    y = np.asarray(y, dtype=np.float32)
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if len(y) else 0.0
    if rms == 0.0:
        return y
    # (frames, bins) in single precision: the filter takes half the time of double, and the
    # samples were float32
    spectrum = stft(y * (LEVEL_RMS / rms), sr, shift=config.shift).astype(np.complex64)
    clean = wpe(np.ascontiguousarray(spectrum.T), config=config).T  # (bins, frames) rows
    return (istft(clean, len(y), sr, shift=config.shift) * (rms / LEVEL_RMS)).astype(np.float32)


def wpe(spectrum: np.ndarray, *, config: DereverbConfig) -> np.ndarray:
    """Weighted prediction error for one channel: each frequency's prediction from the frames
    ``config.delay`` to ``config.delay + config.taps - 1`` before it, weighted by the inverse
    of the power estimated so far (the observed power first), taken away.

    Parameters
    ----------
    spectrum : np.ndarray, shape (n_bins, n_frames), complex

    Returns
    -------
    np.ndarray, the same shape and dtype
    """
    taps, delay = config.taps, config.delay
    n_frames = spectrum.shape[1]
    padded = np.pad(spectrum, ((0, 0), (taps + delay - 1, 0)))  # the past before the clip: 0
    # past[f, k, t] = spectrum[f, t - delay - k], a view: copied a block at a time below
    past_view = np.lib.stride_tricks.sliding_window_view(padded, n_frames, axis=1)[
        :, taps - 1 :: -1
    ]
    estimate = spectrum
    for _ in range(config.iterations):
        power = estimate.real**2 + estimate.imag**2
        largest = power.max()
        weight = (
            1 / np.maximum(power, POWER_FLOOR * largest) if largest > 0 else np.ones_like(power)
        )
        estimate = np.empty_like(spectrum)
        for lo in range(0, len(spectrum), BLOCK):
            block = slice(lo, lo + BLOCK)
            past = np.ascontiguousarray(past_view[block])
            weighted = past * weight[block, None, :]
            correlation = weighted @ past.conj().transpose(0, 2, 1)  # (bins, taps, taps)
            cross = weighted @ spectrum[block].conj()[:, :, None]  # (bins, taps, 1)
            filters = _solve(correlation, cross)
            estimate[block] = spectrum[block] - (filters.conj().transpose(0, 2, 1) @ past)[:, 0]
    return estimate


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a x = b`` for each bin; a singular bin (silence in it) by least squares."""
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return np.stack(
            [np.linalg.lstsq(ai, bi, rcond=None)[0] for ai, bi in zip(a, b, strict=True)]
        )


def stft(y: np.ndarray, sr: int, *, shift: float = DereverbConfig.shift) -> np.ndarray:
    """Complex spectrum of ``FRAME``-long Hann frames every ``shift`` s, the clip padded by a
    frame less a shift on each side so that every sample lies in equally many frames.

    Returns
    -------
    np.ndarray, shape (n_frames, frame // 2 + 1), complex128
    """
    frame, shift = _lengths(sr, shift)
    padded = np.pad(np.asarray(y, dtype=np.float64), frame - shift)
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame)[::shift]
    return scipy.fft.rfft(frames * _window(frame), axis=1)


def istft(
    spectrum: np.ndarray, n: int, sr: int, *, shift: float = DereverbConfig.shift
) -> np.ndarray:
    """Samples back from :func:`stft`'s spectrum (taken every ``shift`` s) by weighted
    overlap-add: ``n`` of them, float64. The round trip returns the clip to within
    floating-point error."""
    frame, shift = _lengths(sr, shift)
    window = _window(frame)
    per = frame // shift  # each frame spans this many shifts: added shift by shift
    frames = (scipy.fft.irfft(spectrum, n=frame, axis=1) * window).reshape(-1, per, shift)
    squares = np.broadcast_to((window**2).reshape(per, shift), frames.shape)
    out, weight = np.zeros((2, len(frames) + per - 1, shift))
    for k in range(per):
        out[k : k + len(frames)] += frames[:, k]
        weight[k : k + len(frames)] += squares[:, k]
    start = frame - shift
    return out.ravel()[start : start + n] / weight.ravel()[start : start + n]


def _lengths(sr: int, shift: float) -> tuple[int, int]:
    frame, shift = round(FRAME * sr), round(shift * sr)
    if frame % shift:
        raise ParameterError(f"dereverb needs a frame a whole number of shifts long at {sr} Hz")
    return frame, shift


def _window(frame: int) -> np.ndarray:
    return np.hanning(frame + 1)[:-1]  # periodic Hann: its squares overlap-add to a constant
