"""Speech buried in steady noise: a noise-floor estimate and spectral gating where it is low.

The encoder's training copies hold noise at 8 dB SNR and up; a recording whose pauses are
nearly as loud as its speech (a fan, hiss, a car) is beyond what it heard. :func:`denoise`
measures the clip's own noise floor (:func:`floor_snr`) and, only when it lies within
``below_db`` of the speech and holds steady (:func:`floor_spread`: babble does not, and
spectral gating takes voices for signal), takes away the stationary noise by spectral gating
(noisereduce's stationary mode: the noise's spectrum learnt from the clip's quietest frames, its
pauses, and each time-frequency bin kept or attenuated by how far it stands above it). A clip
above the threshold, as every studio or quiet-room recording is, passes through untouched, so
the gate changes nothing where it is not needed (:func:`needs_denoising`). Serving only:
training clips and their degraded copies are never denoised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ser_cnn.errors import ParameterError
from ser_cnn.settings import Settings

FLOOR_FRAME = 0.025  # s: frames whose powers estimate the speech and the noise floor
# The quietest tenth of frames are the pauses between words, where only the noise is heard;
# the loudest tenth are vowels (where corpora and the benchmark's conditions fall:
# tools/denoise_trial.py --survey).
FLOOR_PERCENTILE = 10.0
SPEECH_PERCENTILE = 90.0
# "pauses": the noise's spectrum learnt from the quietest fifth of frames; "clip": from the whole
# clip, speech included (noisereduce's default), which teaches the gate that speech is noise.
PROFILES = ("pauses", "clip")
PROFILE_PERCENTILE = 20.0


@dataclass(frozen=True)
class DenoiseConfig(Settings):
    """When and how much :func:`denoise` takes away.

    Attributes
    ----------
    below_db : float
        Gate: a clip is denoised only when its :func:`floor_snr` is below this, in dB.
    amount : float
        Fraction of the noise taken away, in (0, 1] (noisereduce's ``prop_decrease``); less
        than all of it leaves fewer artefacts for the encoder to hear.
    profile : str
        Where the noise's spectrum is learnt: one of ``PROFILES``.
    steady_db : float or None
        Gate: a clip is denoised only when its :func:`floor_spread` is below this, in dB;
        None: however its floor moves.
    """

    TABLE = "denoise"

    below_db: float = 15.0
    amount: float = 1.0
    profile: str = "pauses"
    steady_db: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.amount <= 1.0:
            raise ParameterError(f"denoise amount must be in (0, 1], got {self.amount}")
        if self.profile not in PROFILES:
            raise ParameterError(f"denoise profile must be one of {PROFILES}, got {self.profile!r}")


def floor_snr(y: np.ndarray, sr: int) -> float:
    """How far a clip's speech stands above its noise floor, in dB.

    The ratio of the ``SPEECH_PERCENTILE``-th to the ``FLOOR_PERCENTILE``-th percentile of the
    powers of its ``FLOOR_FRAME``-long frames. No reference is needed, so it is the clip's own.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
        Samples at ``sr`` Hz.
    sr : int
        Sample rate in Hz.

    Returns
    -------
    float
        dB; infinite for a clip with digital silence in its pauses, 0 for one without speech.
    """
    return _snr_db(_frame_power(_frames(y, sr)))


def floor_spread(y: np.ndarray, sr: int) -> float:
    """How much a clip's noise floor moves, in dB: the ratio of the loudest to the quietest of
    its quietest ``PROFILE_PERCENTILE`` percent of frames (those :func:`denoise` learns the
    noise from). Steady noise keeps them within a dB or two; babble, other voices, does not.

    Returns
    -------
    float
        dB; infinite when the quietest frame is digital silence and others are not.
    """
    return _spread_db(_frame_power(_frames(y, sr)))


def has_floor(y: np.ndarray, sr: int) -> bool:
    """Whether ``y`` is long enough for a noise floor: at least two ``FLOOR_FRAME`` frames."""
    return len(y) >= 2 * round(FLOOR_FRAME * sr)


def needs_denoising(y: np.ndarray, sr: int, *, config: DenoiseConfig) -> bool:
    """Whether :func:`denoise` changes ``y``: its floor within ``config.below_db`` of its speech,
    and steady (within ``config.steady_db``, when set)."""
    return _framed(y, sr, config) is not None


def denoise(y: np.ndarray, sr: int, *, config: DenoiseConfig) -> np.ndarray:
    """``y`` with its stationary noise taken away (``config.amount`` of it) when it
    :func:`needs_denoising`; otherwise ``y`` itself.

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    y = np.asarray(y, dtype=np.float32)
    framed = _framed(y, sr, config)  # once, for the gate and the noise profile
    if framed is None:
        return y
    import noisereduce  # imported only when a clip needs it: it costs the light runtime's start

    noise = None  # noisereduce's default: the clip itself
    if config.profile == "pauses":
        frames, power = framed
        noise = frames[power <= np.percentile(power, PROFILE_PERCENTILE)].ravel()
    out = noisereduce.reduce_noise(
        y=y, sr=sr, stationary=True, y_noise=noise, prop_decrease=config.amount
    )
    return np.asarray(out, dtype=np.float32)


def _frames(y: np.ndarray, sr: int) -> np.ndarray:
    """``y`` cut into whole ``FLOOR_FRAME``-long frames, shape (n_frames, frame)."""
    frame = max(1, round(FLOOR_FRAME * sr))
    n = len(y) // frame
    if n < 2:
        raise ParameterError(f"need at least two {FLOOR_FRAME} s frames, got {len(y)} samples")
    return np.asarray(y[: n * frame]).reshape(n, frame)


def _frame_power(frames: np.ndarray) -> np.ndarray:
    return np.mean(np.square(frames, dtype=np.float64), axis=1)


def _framed(y: np.ndarray, sr: int, config: DenoiseConfig) -> tuple | None:
    """The clip's frames and their powers when it passes the gate; None when it does not (or
    is shorter than two frames)."""
    if not has_floor(y, sr):
        return None
    frames = _frames(y, sr)
    power = _frame_power(frames)
    if _snr_db(power) >= config.below_db:
        return None
    if config.steady_db is not None and _spread_db(power) >= config.steady_db:
        return None
    return frames, power


def _snr_db(power: np.ndarray) -> float:
    """:func:`floor_snr` of frame powers."""
    floor, speech = np.percentile(power, [FLOOR_PERCENTILE, SPEECH_PERCENTILE])
    if floor <= 0.0:
        return float("inf") if speech > 0.0 else 0.0
    return float(10.0 * np.log10(speech / floor))


def _spread_db(power: np.ndarray) -> float:
    """:func:`floor_spread` of frame powers."""
    quiet = np.sort(power)[: max(2, int(len(power) * PROFILE_PERCENTILE / 100))]
    if quiet[0] <= 0.0:
        return float("inf") if quiet[-1] > 0.0 else 0.0
    return float(10.0 * np.log10(quiet[-1] / quiet[0]))
