"""The one feature function: audio in, a fixed-size log-mel spectrogram out.

Preprocessing (for training) and inference both call :func:`log_mel`, and every cache and every
trained model stores the :class:`FeatureConfig` it was made with, so the two can never drift.

Why these settings, for RAVDESS:

* The clips are 2.9–5.3 s long but start and end with about a second of room noise. After
  trimming at 40 dB below the loudest frame the speech lasts 1.3–4.2 s (median 2.0 s, 90th
  percentile 2.9 s), so a 3 s window keeps all of the speech of nine clips in ten and the
  middle 3 s of the rest.
* 25 ms windows every 10 ms are the standard speech analysis frames: short enough to follow
  pitch and energy contours, long enough to resolve harmonics of a low voice.
* 64 mel bands from 50 Hz (below the lowest male F0) to 8 kHz (Nyquist at 16 kHz) give the
  CNN a 64 × 301 image, small enough to train on a laptop CPU.
* Levels are relative: each clip is scaled so its loudest frame sits at ``level_db``, so the
  recording's gain cannot change the answer; loudness within a clip remains a cue.

The STFT, mel filterbank and trim are written here in NumPy rather than called from librosa:
librosa's first call imports SciPy's signal stack (about 1.5 s), which would double the start-up
time of a one-clip inference. ``tests/test_features.py`` checks that the result equals
``librosa.feature.melspectrogram`` followed by ``librosa.power_to_db``.

:class:`WhisperFeatureConfig` (at the end) is the pretrained Whisper encoder's input instead:
Whisper's own 80-band log-mel of the clip, trimmed and levelled by the same rule, at its length.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.fft

from ser_cnn.audio.front_end import FrontEnd
from ser_cnn.audio.io import SAMPLE_RATE, AudioSource, load_audio
from ser_cnn.errors import ParameterError


@dataclass(frozen=True)
class FeatureConfig:
    """Every setting that shapes the log-mel tensor. Stored with each cache and model."""

    kind: ClassVar[str] = "logmel"  # names the cache type in settings.json

    sample_rate: int = SAMPLE_RATE  # Hz
    n_fft: int = 512  # samples: 32 ms FFT, next power of two above the window
    win_length: int = 400  # samples: 25 ms analysis window
    hop_length: int = 160  # samples: 10 ms between frames
    n_mels: int = 64  # mel bands
    fmin: float = 50.0  # Hz: below the lowest adult male F0 (~65 Hz)
    fmax: float = 8000.0  # Hz: Nyquist at 16 kHz
    duration: float = 3.0  # s: the window every clip is cropped or centre-padded to
    trim_db: float = 40.0  # dB below the loudest frame that counts as silence at the ends
    top_db: float = 80.0  # dB: floor of the log-mel below its own maximum (padding, silence)
    # Level invariance: the trimmed clip is scaled so its loudest frame has this RMS (dBFS), so
    # a recording's gain cannot change the answer. None keeps the recording's own level (runs
    # made before this setting existed: they learned RAVDESS's studio level).
    level_db: float | None = -20.0
    # Noise-robust framing: speech frames must also stand this far above the noise floor (the
    # 10th percentile of frame levels), so room tone or noise around the speech is trimmed too.
    # None: only trim_db counts (runs made before this setting existed).
    noise_margin_db: float | None = 6.0
    # Speech frames must also be within trim_db of the loudest frame of the pre-emphasised clip
    # (y[n] - 0.97 y[n-1], -30 dB at 50 Hz), where rumble and low room tone weigh little: a
    # recording padded with room tone quieter than its own noise otherwise pulls the noise
    # floor down and keeps all of it. None: off (runs made before this setting existed).
    trim_preemphasis: float | None = 0.97
    # A clip longer than the window after trimming (room tone that was not trimmed, long
    # speech) keeps its loudest stretch, not its middle, so the speech stays in view. None:
    # the middle (runs made before this setting existed).
    loudest_window: bool | None = True

    def __post_init__(self) -> None:
        if not 0 < self.win_length <= self.n_fft:
            raise ParameterError(
                f"need 0 < win_length <= n_fft, got {self.win_length}, {self.n_fft}"
            )
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ParameterError(
                f"need 0 <= fmin < fmax <= sample_rate / 2, got {self.fmin}, {self.fmax}"
            )
        if self.duration * self.sample_rate < self.n_fft:
            raise ParameterError(f"duration {self.duration} s is shorter than one FFT frame")

    @property
    def n_samples(self) -> int:
        """Samples in one fixed-length clip (48,000 by default)."""
        return round(self.duration * self.sample_rate)

    @property
    def n_frames(self) -> int:
        """Frames in one log-mel tensor (301 by default: centred frames, both ends included)."""
        return 1 + self.n_samples // self.hop_length

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of one log-mel tensor: (n_mels, n_frames)."""
        return (self.n_mels, self.n_frames)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def compute(self, source: AudioSource, *, sr: float | None = None) -> np.ndarray:
        """:func:`log_mel` with these settings."""
        return log_mel(source, sr=sr, config=self)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureConfig:
        """Settings as stored; a setting newer than the record had its 'off' value then."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ParameterError(
                f"unknown feature settings {sorted(unknown)}; known: {sorted(names)}"
            )
        before = {
            "level_db": None,
            "noise_margin_db": None,
            "trim_preemphasis": None,
            "loudest_window": None,
        }
        return cls(**(before | d))


DEFAULT_CONFIG = FeatureConfig()


def log_mel(
    source: AudioSource, *, sr: float | None = None, config: FeatureConfig = DEFAULT_CONFIG
) -> np.ndarray:
    """Log-mel spectrogram of a clip, trimmed and fitted to ``config.duration``.

    Parameters
    ----------
    source : str, os.PathLike or np.ndarray
        A file or an array of samples (see :func:`ser_cnn.audio.io.load_audio`).
    sr : float, optional
        Sample rate of an array ``source`` in Hz.
    config : FeatureConfig

    Returns
    -------
    np.ndarray, shape (config.n_mels, config.n_frames), float32
        Power in dB re full scale, floored at ``config.top_db`` below the clip's maximum.
    """
    return clip_log_mel(load_audio(source, sr=sr, target_sr=config.sample_rate), config)


def clip_log_mel(y: np.ndarray, config: FeatureConfig = DEFAULT_CONFIG) -> np.ndarray:
    """:func:`log_mel` of samples already at ``config.sample_rate``: trim, level, fit, log-mel.

    The one composition of the CNN's input, shared by preprocessing and inference.

    Returns
    -------
    np.ndarray, shape (config.n_mels, config.n_frames), float32
    """
    y, power = levelled_speech(y, config)
    if config.loudest_window and len(y) > config.n_samples:
        y = _loudest_stretch(y, power, config)  # the level's scaling keeps power's argmax
    return log_mel_from_samples(fit_length(y, config.n_samples), config)


def levelled_speech(
    y: np.ndarray, config: FeatureConfig = DEFAULT_CONFIG
) -> tuple[np.ndarray, np.ndarray]:
    """The clip's speech as the CNN hears it: silence trimmed (:func:`trim_silence`), its
    loudest frame scaled to ``config.level_db`` (when set).

    Returns
    -------
    y : np.ndarray, shape (n,), float32
    power : np.ndarray, shape (frames,), float64
        Each frame's mean square before the scaling.
    """
    y = trim_silence(y, config=config)
    power = _frame_power(y, config)
    if config.level_db is not None:
        y = y * np.float32(10 ** (config.level_db / 20) / max(np.sqrt(power.max()), 1e-10))
    return y, power


def _loudest_stretch(y: np.ndarray, power: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The ``config.n_samples`` of ``y`` (longer) with the most energy, on the frame grid of
    its frame ``power``."""
    energy = np.concatenate([[0.0], np.cumsum(power)])
    width = min(config.n_samples // config.hop_length, len(energy) - 1)  # frames in a window
    start = int(np.argmax(energy[width:] - energy[:-width])) * config.hop_length
    return y[start : start + config.n_samples]


def _frame_power(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Mean square of each analysis frame (win_length samples every hop_length), float64."""
    if len(y) < config.win_length:
        return np.array([np.mean(np.square(y, dtype=np.float64)) if len(y) else 0.0])
    frames = np.lib.stride_tricks.sliding_window_view(y, config.win_length)[:: config.hop_length]
    return np.mean(np.square(frames, dtype=np.float64), axis=1)


def _frame_level(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """:func:`_frame_power` in dB re full scale (floored at -200 dB)."""
    return 10 * np.log10(np.maximum(_frame_power(y, config), 1e-20))


def log_mel_from_samples(y: np.ndarray, config: FeatureConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Log-mel spectrogram of samples already at ``config.sample_rate``, of any length.

    Returns
    -------
    np.ndarray, shape (config.n_mels, 1 + len(y) // config.hop_length), float32
    """
    power = power_spectrogram(
        np.asarray(y, dtype=np.float32),
        n_fft=config.n_fft,
        win_length=config.win_length,
        hop_length=config.hop_length,
    )
    return power_to_db(mel_filterbank(config) @ power, top_db=config.top_db)


def power_to_db(power: np.ndarray, *, top_db: float = 80.0) -> np.ndarray:
    """10·log10(power) (dB re 1.0), floored at ``top_db`` below its maximum; float32."""
    db = 10.0 * np.log10(np.maximum(power, 1e-10))
    return np.maximum(db, db.max() - top_db).astype(np.float32)


def trim_silence(y: np.ndarray, *, config: FeatureConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Cut leading and trailing frames that are not speech.

    A frame counts as speech when it is within ``config.trim_db`` of the loudest frame and, with
    ``config.noise_margin_db``, at least that far above the noise floor (the 10th percentile of
    frame levels), so room tone, hum or steady noise around the speech is cut too. With
    ``config.trim_preemphasis`` it must also be within ``config.trim_db`` of the loudest frame of
    the pre-emphasised clip, which low rumble cannot reach.

    Parameters
    ----------
    y : np.ndarray, shape (n,)

    Returns
    -------
    np.ndarray, shape (m,), m <= n; ``y`` itself when it is shorter than one frame.
    """
    frame, hop = config.win_length, config.hop_length
    if len(y) < frame:
        return y
    loud = np.flatnonzero(speech_frames(frame_levels(y, config), config))
    if loud.size == 0:
        return y
    return y[loud[0] * hop : min(len(y), loud[-1] * hop + frame)]


def frame_levels(y: np.ndarray, config: FeatureConfig = DEFAULT_CONFIG) -> np.ndarray:
    """What :func:`speech_frames` judges: each frame's level in dB re full scale, as recorded
    and (with ``config.trim_preemphasis``) pre-emphasised.

    Returns
    -------
    np.ndarray, shape (2, n_frames), float64
        Row 0 the level, row 1 the pre-emphasised level (a copy of row 0 without pre-emphasis).
    """
    level = _frame_level(y, config)
    if config.trim_preemphasis is None or len(y) < 2:
        return np.stack([level, level])
    emphasised = np.append(y[:1], y[1:] - config.trim_preemphasis * y[:-1])
    return np.stack([level, _frame_level(emphasised, config)])


def speech_frames(
    levels: np.ndarray,
    config: FeatureConfig = DEFAULT_CONFIG,
    *,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """Which frames count as speech, by the rule of :func:`trim_silence`.

    Parameters
    ----------
    levels : np.ndarray, shape (2, n_frames)
        :func:`frame_levels` of the frames to judge.
    reference : np.ndarray, shape (2, m), optional
        :func:`frame_levels` of the recording they belong to, whose loudest frame and noise
        floor set the thresholds (default: ``levels`` themselves). A window of a long
        recording is judged against the whole recording, so room tone does not count as
        speech in a window that holds nothing else.

    Returns
    -------
    np.ndarray, shape (n_frames,), bool
    """
    reference = levels if reference is None else reference
    threshold = reference[0].max() - config.trim_db
    if config.noise_margin_db is not None:
        threshold = max(threshold, np.percentile(reference[0], 10) + config.noise_margin_db)
    speech = levels[0] > threshold
    if config.trim_preemphasis is not None:
        speech &= levels[1] > reference[1].max() - config.trim_db
    return speech


def fit_length(y: np.ndarray, n_samples: int) -> np.ndarray:
    """Centre-crop or zero-pad (equally on both sides) to exactly ``n_samples``."""
    excess = len(y) - n_samples
    if excess >= 0:
        start = excess // 2
        return y[start : start + n_samples]
    before = -excess // 2
    return np.pad(y, (before, -excess - before))


def power_spectrogram(
    y: np.ndarray, *, n_fft: int, win_length: int, hop_length: int, pad_mode: str = "constant"
) -> np.ndarray:
    """|STFT|² with centred frames (padding of n_fft // 2) and a periodic Hann window.

    ``pad_mode`` is NumPy's: "constant" pads with zeros (the CNN's features), "reflect"
    mirrors the clip without repeating its end samples (Whisper's, as ``torch.stft``).

    Returns
    -------
    np.ndarray, shape (n_fft // 2 + 1, 1 + len(y) // hop_length), float32
    """
    pad = n_fft // 2
    y = np.pad(y, (pad, pad), mode=pad_mode)
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop_length]
    # scipy's pocketfft keeps float32 (numpy's computes in float64): 7× faster on 2048 points
    spectrum = scipy.fft.rfft(frames * _window(n_fft, win_length), axis=1)
    return (spectrum.real**2 + spectrum.imag**2).T.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _window(n_fft: int, win_length: int) -> np.ndarray:
    """Periodic Hann window of ``win_length``, zero-padded to ``n_fft`` on both sides."""
    n = np.arange(win_length)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / win_length)
    left = (n_fft - win_length) // 2
    return np.pad(w, (left, n_fft - win_length - left)).astype(np.float32)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1000.0) / 1000.0) / (np.log(6.4) / 27)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


def mel_filterbank(config: FeatureConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Triangular, area-normalised (Slaney) mel filters, as ``librosa.filters.mel`` makes them.

    Returns
    -------
    np.ndarray, shape (n_mels, n_fft // 2 + 1), float32
    """
    return mel_filters(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax)


@functools.lru_cache(maxsize=8)
def mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    fft_hz = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    rising = (fft_hz[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - fft_hz[None, :]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per band
    return weights.astype(np.float32)


def mel_warp_matrix(factor: float, *, config: FeatureConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Linear map that moves a log-mel spectrogram's content to ``factor`` × its frequencies.

    Playing audio ``factor`` times faster scales every frequency by ``factor``: output band
    ``i`` (centre frequency ``c_i``) then holds what band ``c_i / factor`` held. This matrix
    reads it by linear interpolation between neighbouring bands (edge bands are repeated where
    the source falls outside ``fmin``–``fmax``), so speed perturbation can be applied to cached
    features without recomputing them from audio.

    Parameters
    ----------
    factor : float > 0
        Frequency scale; 1 gives the identity.
    config : FeatureConfig
        The mel settings of the spectrogram.

    Returns
    -------
    np.ndarray, shape (n_mels, n_mels), float32
        ``warp @ log_mel`` is the warped spectrogram; every row sums to 1.
    """
    if not factor > 0:
        raise ParameterError(f"factor must be positive, got {factor}")
    n = config.n_mels
    mels = np.linspace(_hz_to_mel(config.fmin), _hz_to_mel(config.fmax), n + 2)[1:-1]
    source = _hz_to_mel(_mel_to_hz(mels) / factor)
    position = np.clip((source - mels[0]) / (mels[1] - mels[0]), 0, n - 1)  # in bands
    low = np.minimum(np.floor(position).astype(int), n - 2)
    frac = position - low
    warp = np.zeros((n, n))
    rows = np.arange(n)
    warp[rows, low] = 1 - frac
    warp[rows, low + 1] += frac
    return warp.astype(np.float32)


# -- Whisper's log-mel -------------------------------------------------------------------------
# The input of the pretrained Whisper encoder (ser_cnn.encoder): the spectrogram Whisper was
# trained on (whisper/audio.py, log_mel_spectrogram), of the clip trimmed and levelled as above.
WHISPER_LOG_RANGE = 8.0  # log10 units (80 dB): floor below the clip's maximum
WHISPER_LOG_OFFSET = 4.0  # log10 units: (log10 + 4) / 4 puts speech at about -1 to 1
WHISPER_LOG_SCALE = 4.0


@dataclass(frozen=True)
class WhisperFeatureConfig:
    """Whisper's 80-band log-mel spectrogram of a trimmed, levelled clip at its own length.

    Same interface as :class:`FeatureConfig` (``kind``, ``to_dict``, ``from_dict``,
    ``compute``), so caches and run folders can store it. The spectrum is Whisper's exactly:
    25 ms periodic Hann windows every 10 ms, centred and reflect-padded, the last frame
    dropped, Slaney mel filters from 0 to 8 kHz, log10 of the power floored at 1e-10 and at
    8 below its maximum, then (x + 4) / 4. Unlike Whisper the clip is not padded to 30 s.
    """

    kind: ClassVar[str] = "whisper_logmel"  # names the cache type in settings.json

    sample_rate: int = SAMPLE_RATE  # Hz: Whisper's
    n_fft: int = 400  # samples: 25 ms window and FFT (Whisper's N_FFT)
    hop_length: int = 160  # samples: 10 ms between frames (Whisper's HOP_LENGTH)
    n_mels: int = 80  # mel bands: Whisper up to large-v2 (large-v3: 128)
    fmin: float = 0.0  # Hz: librosa.filters.mel's default, as Whisper's mel_filters
    fmax: float = 8000.0  # Hz: Nyquist at 16 kHz
    # Trim and level by the CNN's rule (see FeatureConfig): the same fields, the same functions.
    trim_db: float = 40.0  # dB below the loudest frame that counts as silence at the ends
    noise_margin_db: float | None = 6.0  # dB above the noise floor a speech frame must reach
    trim_preemphasis: float | None = 0.97  # pre-emphasis of the second trim criterion
    level_db: float | None = -20.0  # dBFS of the loudest frame after scaling; None: as recorded
    # A clip longer than this after trimming keeps its loudest stretch. 30 s is the most the
    # encoder takes (1500 positions after its stride-2 convolution); None: no limit.
    max_duration: float | None = 30.0  # s

    def __post_init__(self) -> None:
        if min(self.sample_rate, self.n_fft, self.hop_length, self.n_mels) < 1:
            raise ParameterError("sample_rate, n_fft, hop_length and n_mels must be positive")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ParameterError(
                f"need 0 <= fmin < fmax <= sample_rate / 2, got {self.fmin}, {self.fmax}"
            )
        if self.max_duration is not None and self.max_duration * self.sample_rate < self.n_fft:
            raise ParameterError(f"max_duration {self.max_duration} s is shorter than one frame")

    @property
    def win_length(self) -> int:
        """Samples in one analysis window: Whisper's window fills its FFT."""
        return self.n_fft

    @property
    def n_samples(self) -> int | None:
        """Most samples of a clip (``max_duration``), or None."""
        return None if self.max_duration is None else round(self.max_duration * self.sample_rate)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> WhisperFeatureConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ParameterError(
                f"unknown Whisper feature settings {sorted(unknown)}; known: {sorted(names)}"
            )
        return cls(**d)

    def compute(self, source: AudioSource, *, sr: float | None = None) -> np.ndarray:
        """:func:`whisper_log_mel` with these settings."""
        return whisper_log_mel(source, sr=sr, config=self)


DEFAULT_WHISPER = WhisperFeatureConfig()


def whisper_log_mel(
    source: AudioSource, *, sr: float | None = None, config: WhisperFeatureConfig = DEFAULT_WHISPER
) -> np.ndarray:
    """Whisper's log-mel spectrogram of a clip, trimmed and levelled, at its own length.

    Parameters
    ----------
    source : str, os.PathLike or np.ndarray
        A file or an array of samples (see :func:`ser_cnn.audio.io.load_audio`).
    sr : float, optional
        Sample rate of an array ``source`` in Hz.
    config : WhisperFeatureConfig

    Returns
    -------
    np.ndarray, shape (config.n_mels, n_samples // config.hop_length), float32
        ``n_samples`` counts the trimmed clip (at most ``config.max_duration``); values are
        (log10(power) + 4) / 4, at most 2 apart.
    """
    y = load_audio(source, sr=sr, target_sr=config.sample_rate)
    return clip_whisper_log_mel(y, config)


def clip_whisper_log_mel(
    y: np.ndarray,
    config: WhisperFeatureConfig = DEFAULT_WHISPER,
    *,
    front_end: FrontEnd | None = None,
) -> np.ndarray:
    """:func:`whisper_log_mel` of samples already at ``config.sample_rate``; ``front_end``: an
    encoder run's front end, applied first (:mod:`ser_cnn.audio.front_end`)."""
    if front_end is not None:
        y = front_end(y, config.sample_rate)
    y = trim_silence(y, config=config)
    power = _frame_power(y, config)
    if config.level_db is not None:  # as clip_log_mel: the loudest frame at level_db
        y = y * np.float32(10 ** (config.level_db / 20) / max(np.sqrt(power.max()), 1e-10))
    if config.n_samples is not None and len(y) > config.n_samples:
        y = _loudest_stretch(y, power, config)
    return whisper_log_mel_from_samples(y, config)


def whisper_log_mel_from_samples(
    y: np.ndarray, config: WhisperFeatureConfig = DEFAULT_WHISPER
) -> np.ndarray:
    """Whisper's log-mel of samples as they are (no trim, level or length limit).

    Equals ``whisper.log_mel_spectrogram(y)`` where Whisper is given the same samples (it
    takes its maximum over the 30 s it pads to; here over the clip).

    Returns
    -------
    np.ndarray, shape (config.n_mels, len(y) // config.hop_length), float32
    """
    if len(y) < config.hop_length:
        raise ParameterError(f"need at least {config.hop_length} samples, got {len(y)}")
    power = power_spectrogram(
        np.asarray(y, dtype=np.float32),
        n_fft=config.n_fft,
        win_length=config.n_fft,
        hop_length=config.hop_length,
        pad_mode="reflect",
    )[:, :-1]  # Whisper drops the last centred frame: frames = samples // hop
    mel = mel_filters(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax)
    log = np.log10(np.maximum(mel @ power, 1e-10))
    log = np.maximum(log, log.max() - WHISPER_LOG_RANGE)
    return ((log + WHISPER_LOG_OFFSET) / WHISPER_LOG_SCALE).astype(np.float32)
