"""How real recordings differ from a studio: degradations of 16 kHz mono float32 waveforms.

RAVDESS is 24 actors in one quiet studio, close to one microphone. Users record in rooms, on
phones, over noise, through codecs. The functions here make those differences on purpose, for
two uses that must stay apart:

* :func:`augment` — the training chain: random gain, noise (white, pink, babble), band limit,
  reverberation in ``TRAIN_ROOMS``, the ``TRAIN_CODEC``, speed and room-tone padding.
* :mod:`ser_cnn.audio.conditions` — the fixed, seeded benchmark of ``tools/robustness.py``, built
  from the same functions plus things training never sees (a noise kind, rooms, a codec).

Every kind's name (the chain's kinds, noises, band limits, codecs) is
:mod:`ser_cnn.audio.degradations`'s.

Every function takes ``y`` (shape (n,), float, at ``sr`` Hz), never changes it, returns a new
float32 array, and draws all randomness from the ``np.random.Generator`` it is given.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import scipy.signal
import soundfile as sf
import soxr

from ser_cnn.audio.degradations import (
    CHAIN_KINDS,
    CODEC_KINDS,
    COLOURS,
    NOISE_KINDS,
    TRAIN_CODEC,
    TRAIN_NOISES,
)
from ser_cnn.audio.rooms import TRAIN_ROOMS, room_impulse_response
from ser_cnn.errors import ParameterError

# -- measuring speech --------------------------------------------------------------------------
FRAME = 0.02  # s: frames in which the active-speech level is measured
ACTIVE_DB = 40.0  # dB: frames within this of the loudest frame count as speech

# -- noise (NOISE_KINDS) -----------------------------------------------------------------------
# power spectrum ∝ 1 / f^exponent, for each of COLOURS
COLOUR_EXPONENTS = dict(zip(COLOURS, (0.0, 1.0, 2.0), strict=True))
FLAT_BELOW_HZ = 20.0  # Hz: coloured spectra stop rising below this (no infinite DC)
BABBLE_TALKERS = (4, 6)  # talkers in a babble, drawn from this inclusive range
MAINS_HZ = 50.0  # Hz: European mains; hum = this and its harmonics
HUM_HARMONICS = 20  # harmonics of the hum (up to 1 kHz): rectifiers and transformers buzz
HUM_BROWN_DB = -10.0  # dB: level of the rumble under the hum, relative to the hum

# -- channels (degradations.BAND_KINDS, CODEC_KINDS) -------------------------------------------
TELEPHONE_SR = 8_000  # Hz: narrow-band telephony
TELEPHONE_BAND = (300.0, 3400.0)  # Hz: the ITU-T G.712 pass band
TELEPHONE_ORDER = 4  # Butterworth band-pass, applied forwards and backwards
LOWPASS_ORDER = 8  # Butterworth low-pass, applied forwards and backwards
# kind -> (container, subtype, sample rate in Hz (None: keep), compression_level (None: fixed)).
# Lowest bitrates libsndfile 1.2.2 offers for 16 kHz mono speech, measured on noise:
CODECS = {
    "gsm": ("WAV", "GSM610", TELEPHONE_SR, None),  # 13 kbit/s GSM full rate at 8 kHz
    "mp3": ("MP3", "MPEG_LAYER_III", None, 0.99),  # ~18 kbit/s (1.0 is refused at 16 kHz)
    "vorbis": ("OGG", "VORBIS", None, 1.0),  # ~37 kbit/s, Vorbis's floor at 16 kHz
    "opus": ("OGG", "OPUS", None, 0.99),  # ~9 kbit/s, like a voice message or a poor VoIP call
}
assert tuple(CODECS) == CODEC_KINDS

# -- training chain (CHAIN_KINDS) --------------------------------------------------------------
# Probability that each kind is applied to a training clip, in the order they are applied:
# talker, room, recording, environment, microphone level, channel, compression.
AUGMENT_P = {
    "speed": 0.25,
    "reverb": 0.25,
    "pad": 0.3,
    "noise": 0.3,
    "gain": 0.5,
    "band": 0.15,
    "codec": 0.15,
}
assert tuple(AUGMENT_P) == CHAIN_KINDS  # the order of the random streams
SPEED_RANGE = (0.9, 1.1)  # speed factor
RT60_RANGE = (0.2, 1.0)  # s
PAD_BEFORE = (0.0, 0.5)  # s
PAD_AFTER = (0.0, 2.0)  # s
TONE_DBFS = (-80.0, -55.0)  # dBFS RMS of the room tone that padding adds
SNR_RANGE = (8.0, 30.0)  # dB, over active speech
GAIN_RANGE = (-20.0, 20.0)  # dB
LOWPASS_RANGE = (3000.0, 6000.0)  # Hz
P_TELEPHONE = 0.5  # of band limits (degradations.BAND_KINDS): telephone; otherwise low-pass
P_MU_LAW = 0.5  # of telephone band limits: also mu-law coded


def gain(y: np.ndarray, db: float, *, max_peak: float | None = None) -> np.ndarray:
    """Scale by ``db`` decibels.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
    db : float
        Gain in dB (amplitude × 10^(db/20)).
    max_peak : float, optional
        If the result would peak above this (full scale = 1.0), it is scaled down to peak at
        exactly ``max_peak`` instead: a level change that never clips.

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    x = _samples(y) * 10.0 ** (db / 20.0)
    peak = np.max(np.abs(x))
    if max_peak is not None and peak > max_peak:
        x *= max_peak / peak
    return x.astype(np.float32)


def active_mask(y: np.ndarray, sr: int) -> np.ndarray:
    """Samples in ``FRAME``-long frames within ``ACTIVE_DB`` of the loudest frame: the speech.

    Levels and SNRs are measured over these, so leading or trailing silence (RAVDESS has about
    a second) does not lower them.

    Returns
    -------
    np.ndarray of bool, shape (n,)
    """
    x = _samples(y)
    frame = max(1, round(FRAME * _rate(sr)))
    starts = np.arange(0, len(x), frame)
    power = np.add.reduceat(x**2, starts) / np.diff(np.append(starts, len(x)))
    if power.max() <= 0:
        raise ParameterError("digital silence: there is no speech to measure a level on")
    active = power >= power.max() * 10.0 ** (-ACTIVE_DB / 10.0)
    return np.repeat(active, frame)[: len(x)]


def make_noise(
    n: int,
    sr: int,
    *,
    kind: str,
    rng: np.random.Generator,
    babble: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """``n`` samples of noise of one of ``NOISE_KINDS``, at unit RMS.

    Colours are shaped in the frequency domain (white Gaussian noise, spectrum scaled by
    f^(-exponent/2)): the slope is exact and every sample comes from ``rng``.
    (audiomentations' AddColorNoise draws from NumPy's global random state, so a benchmark
    could not seed it per clip.)

    Parameters
    ----------
    n : int
        Samples.
    sr : int
        Hz.
    kind : {'white', 'pink', 'brown', 'babble', 'hum'}
        'babble': 4 to 6 talkers drawn from ``babble``, each trimmed to its speech, brought to
        the same active level, randomly cropped or looped to ``n`` samples, and summed.
        'hum': ``MAINS_HZ`` mains hum, its harmonics to 1 kHz with random phases and 1/k
        amplitudes, over brown rumble ``HUM_BROWN_DB`` below it.
    babble : sequence of np.ndarray, optional
        Speech waveforms at ``sr``, shape (m,) each; required for 'babble'.

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    sr = _rate(sr)
    if kind in COLOUR_EXPONENTS:
        spectrum = np.fft.rfft(rng.standard_normal(n))
        f = np.maximum(np.fft.rfftfreq(n, 1.0 / sr), FLAT_BELOW_HZ)
        x = np.fft.irfft(spectrum * f ** (-COLOUR_EXPONENTS[kind] / 2.0), n)
    elif kind == "babble":
        if not babble:
            raise ParameterError("kind='babble' needs speech to mix: babble=[array, ...]")
        talkers = int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))
        chosen = rng.choice(len(babble), size=talkers, replace=len(babble) < talkers)
        x = np.zeros(n)
        for i in chosen:
            speech = _samples(babble[i])
            mask = active_mask(speech, sr)
            speech = speech[np.argmax(mask) : len(mask) - np.argmax(mask[::-1])]
            x += _crop_or_loop(speech / _rms(speech), n, rng)
    elif kind == "hum":
        t = np.arange(n) / sr
        f0 = MAINS_HZ * rng.uniform(0.998, 1.002)  # the grid drifts by a few tenths of a percent
        k = np.arange(1, HUM_HARMONICS + 1)[:, None]
        phases = rng.uniform(0, 2 * np.pi, size=(HUM_HARMONICS, 1))
        hum = np.sum(np.sin(2 * np.pi * f0 * k * t + phases) / k, axis=0)
        brown = make_noise(n, sr, kind="brown", rng=rng)
        x = hum / _rms(hum) + 10.0 ** (HUM_BROWN_DB / 20.0) * brown
    else:
        raise ParameterError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r}")
    return (x / _rms(x)).astype(np.float32)


def add_noise(
    y: np.ndarray,
    sr: int,
    *,
    snr_db: float,
    kind: str,
    rng: np.random.Generator,
    babble: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Add noise of ``kind`` (see :func:`make_noise`) at ``snr_db`` over the active speech.

    The SNR is the ratio of the signal's power to the noise's power over the samples of
    :func:`active_mask`, so silence before and after the speech does not change it.

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    x = _samples(y)
    mask = active_mask(x, sr)
    noise = make_noise(len(x), sr, kind=kind, rng=rng, babble=babble).astype(np.float64)
    ratio = np.mean(x[mask] ** 2) / np.mean(noise[mask] ** 2)
    return (x + noise * np.sqrt(ratio * 10.0 ** (-snr_db / 10.0))).astype(np.float32)


def telephone(y: np.ndarray, sr: int, *, mu_law: bool = False) -> np.ndarray:
    """A narrow-band telephone line: 8 kHz, the G.712 300–3400 Hz band, optionally mu-law.

    The signal is resampled to 8 kHz (soxr), band-passed with a zero-phase Butterworth filter
    (the speech stays where it was), optionally coded as 8-bit mu-law (G.711, via libsndfile)
    and resampled back to ``sr``.

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    sr, x = _rate(sr), _samples(y)
    if sr < TELEPHONE_SR:
        raise ParameterError(f"telephone() needs audio at {TELEPHONE_SR} Hz or more, got {sr}")
    narrow = soxr.resample(x, sr, TELEPHONE_SR, quality="HQ")
    sos = scipy.signal.butter(
        TELEPHONE_ORDER, TELEPHONE_BAND, btype="bandpass", fs=TELEPHONE_SR, output="sos"
    )
    narrow = scipy.signal.sosfiltfilt(sos, narrow)
    if mu_law:
        narrow = _roundtrip(narrow, TELEPHONE_SR, "WAV", "ULAW", None, "mu-law")
    return _fit(soxr.resample(narrow, TELEPHONE_SR, sr, quality="HQ"), len(x))


def lowpass(y: np.ndarray, sr: int, *, cutoff_hz: float) -> np.ndarray:
    """Remove what lies above ``cutoff_hz`` (a cheap microphone, a resampled upload).

    Zero-phase Butterworth of order ``LOWPASS_ORDER`` (twice that, in effect).

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    sr = _rate(sr)
    if not 0 < cutoff_hz < sr / 2:
        raise ParameterError(f"cutoff_hz must lie between 0 and {sr / 2} Hz, got {cutoff_hz}")
    sos = scipy.signal.butter(LOWPASS_ORDER, cutoff_hz, btype="lowpass", fs=sr, output="sos")
    return scipy.signal.sosfiltfilt(sos, _samples(y)).astype(np.float32)


def reverb(
    y: np.ndarray, sr: int, *, rt60: float, room: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """The speech as a microphone in a reverberant room hears it.

    Convolves with :func:`room_impulse_response`; the tail past the input's end is cut and the
    level matched to the input's RMS.

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    return apply_rir(y, room_impulse_response(sr, rt60=rt60, room=room, rng=rng))


def apply_rir(y: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``y`` through impulse response ``h``: the tail past its end cut, its RMS kept; float32."""
    x = _samples(y)
    wet = scipy.signal.oaconvolve(x, h.astype(np.float64))[: len(x)]
    return (wet * _rms(x) / _rms(wet)).astype(np.float32)


def codec(y: np.ndarray, sr: int, *, kind: str) -> np.ndarray:
    """Encode and decode with a lossy codec of ``CODECS``, in memory, through libsndfile.

    Samples beyond full scale are clipped first, as any encoder would. Codecs with their own
    rate (GSM: 8 kHz) are resampled to it and back.

    Returns
    -------
    np.ndarray, shape (n,), float32
        The same length as ``y``: decoder padding to whole frames is cut.

    Raises
    ------
    ParameterError
        Unknown ``kind``, or a libsndfile that cannot write it.
    """
    if kind not in CODECS:
        raise ParameterError(f"codec kind must be one of {tuple(CODECS)}, got {kind!r}")
    container, subtype, rate, level = CODECS[kind]
    sr, x = _rate(sr), _samples(y)
    rate = rate or sr
    if rate != sr:
        x = soxr.resample(x, sr, rate, quality="HQ")
    decoded = _roundtrip(np.clip(x, -1.0, 1.0), rate, container, subtype, level, kind)
    if rate != sr:
        decoded = soxr.resample(decoded, rate, sr, quality="HQ")
    return _fit(decoded, len(y))


def speed(y: np.ndarray, sr: int, *, factor: float) -> np.ndarray:
    """Play ``factor`` times faster: tempo and pitch both scale, as on a tape (soxr).

    Returns
    -------
    np.ndarray, shape (round(n / factor),), float32
    """
    sr = _rate(sr)
    if not 0.25 <= factor <= 4.0:
        raise ParameterError(f"speed factor must lie between 0.25 and 4, got {factor}")
    return soxr.resample(_samples(y), sr, sr / factor, quality="HQ").astype(np.float32)


def pad(
    y: np.ndarray,
    sr: int,
    *,
    before: float,
    after: float,
    tone_db: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Add ``before`` and ``after`` seconds of room tone: a recording started early, ended late.

    The room tone is brown noise (rumble, ventilation) at ``tone_db`` dBFS RMS, not digital
    silence, which no real microphone records. The speech itself is not touched.

    Returns
    -------
    np.ndarray, shape (n + round(before · sr) + round(after · sr),), float32
    """
    sr = _rate(sr)
    if before < 0 or after < 0:
        raise ParameterError(f"before and after must be >= 0 s, got {before}, {after}")
    n_before, n_after = round(before * sr), round(after * sr)
    if n_before + n_after == 0:
        return _samples(y).astype(np.float32)
    tone = make_noise(n_before + n_after, sr, kind="brown", rng=rng) * 10.0 ** (tone_db / 20)
    return np.concatenate([tone[:n_before], _samples(y), tone[n_before:]]).astype(np.float32)


def augment(
    y: np.ndarray,
    sr: int,
    *,
    rng: np.random.Generator,
    babble: Sequence[np.ndarray] | None = None,
    kinds: Collection[str] = CHAIN_KINDS,
    p: Mapping[str, float] = AUGMENT_P,
    snr_range: tuple[float, float] = SNR_RANGE,
) -> np.ndarray:
    """The training augmentation: each kind of ``AUGMENT_P``, with its probability, in order.

    speed (``SPEED_RANGE``) → reverb (a ``TRAIN_ROOMS`` room, ``RT60_RANGE``) → pad (room
    tone, ``PAD_BEFORE`` / ``PAD_AFTER`` at ``TONE_DBFS``) → noise (``TRAIN_NOISES``; babble
    only with a ``babble`` pool; ``SNR_RANGE``) → gain (``GAIN_RANGE``, never clipping) →
    band (telephone, maybe mu-law, or a low-pass in ``LOWPASS_RANGE``) → codec
    (``TRAIN_CODEC``). The result peaks at full scale at most.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
    sr : int
        Hz.
    rng : np.random.Generator
    babble : sequence of np.ndarray, optional
        Speech of other talkers (training speakers only) for babble noise.
    kinds : collection of str
        The kinds that may be applied (default all ``CHAIN_KINDS``); to measure what each
        gives, leave one out. Each kind draws from its own child of ``rng``, so leaving one out
        does not change what the others do to a clip.
    p : mapping of str to float
        Each kind's probability (default ``AUGMENT_P``); its own stream decides, so raising one
        keeps every clip that had the kind as it was.
    snr_range : (float, float)
        dB over active speech of the added noise (default ``SNR_RANGE``).

    Returns
    -------
    np.ndarray, shape (n',), float32
        n' differs from n after speed or padding.
    """
    unknown = set(kinds) - set(CHAIN_KINDS)
    if unknown:
        raise ParameterError(
            f"unknown degradation kinds {sorted(unknown)}; known: {', '.join(CHAIN_KINDS)}"
        )
    streams = dict(zip(CHAIN_KINDS, rng.spawn(len(CHAIN_KINDS)), strict=True))
    on = {k: k in kinds and streams[k].random() < p[k] for k in CHAIN_KINDS}
    x = _samples(y)
    if on["speed"]:
        x = speed(x, sr, factor=streams["speed"].uniform(*SPEED_RANGE))
    if on["reverb"]:
        r = streams["reverb"]
        room = list(TRAIN_ROOMS.values())[r.integers(len(TRAIN_ROOMS))]
        x = reverb(x, sr, rt60=r.uniform(*RT60_RANGE), room=room, rng=r)
    if on["pad"]:
        r = streams["pad"]
        before, after = r.uniform(*PAD_BEFORE), r.uniform(*PAD_AFTER)
        x = pad(x, sr, before=before, after=after, tone_db=r.uniform(*TONE_DBFS), rng=r)
    if on["noise"]:
        r = streams["noise"]
        kind = r.choice([k for k in TRAIN_NOISES if k != "babble" or babble])
        x = add_noise(x, sr, snr_db=r.uniform(*snr_range), kind=kind, rng=r, babble=babble)
    if on["gain"]:
        x = gain(x, streams["gain"].uniform(*GAIN_RANGE), max_peak=1.0)
    if on["band"]:
        r = streams["band"]
        if r.random() < P_TELEPHONE:
            x = telephone(x, sr, mu_law=bool(r.random() < P_MU_LAW))
        else:
            x = lowpass(x, sr, cutoff_hz=r.uniform(*LOWPASS_RANGE))
    if on["codec"]:
        x = codec(x, sr, kind=TRAIN_CODEC)
    return gain(x, 0.0, max_peak=1.0)  # filters and codecs may overshoot full scale a little


# -- helpers -------------------------------------------------------------------------------------


def _roundtrip(x, rate, container, subtype, level, name) -> np.ndarray:
    """Write to an in-memory file with libsndfile and read it back (float64)."""
    buffer = io.BytesIO()
    try:
        sf.write(buffer, x, rate, format=container, subtype=subtype, compression_level=level)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise ParameterError(
            f"libsndfile {sf.__libsndfile_version__} cannot write {name} "
            f"({container}/{subtype}): {err}"
        ) from None
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float64")
    return decoded


def _crop_or_loop(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A random stretch of ``n`` samples of ``x``, looping ``x`` when it is shorter."""
    if len(x) >= n:
        start = int(rng.integers(len(x) - n + 1))
        return x[start : start + n]
    looped = np.tile(x, n // len(x) + 2)
    start = int(rng.integers(len(x)))
    return looped[start : start + n]


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad the end to ``n`` samples; float32."""
    return np.pad(x[:n], (0, max(0, n - len(x)))).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) or 1.0


def _rate(sr) -> int:
    if isinstance(sr, bool) or not isinstance(sr, int | np.integer) or sr <= 0:
        raise ParameterError(f"sr must be a positive whole number of Hz, got {sr!r}")
    return int(sr)


def _samples(y) -> np.ndarray:
    """A float64 copy of 1-D finite samples (the input is never written to)."""
    if not isinstance(y, np.ndarray) or y.ndim != 1 or y.size == 0:
        shape = getattr(y, "shape", type(y).__name__)
        raise ParameterError(f"expected mono samples of shape (n,), got {shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"expected float samples, got dtype {y.dtype}")
    if not np.isfinite(y).all():
        raise ParameterError("samples contain NaN or infinity")
    return y.astype(np.float64)
