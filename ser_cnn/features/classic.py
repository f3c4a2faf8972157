"""The MLP baseline's features: the seed projects' 180-number summary of each clip.

Means over time of 40 MFCCs, 12 chroma bins (from the STFT magnitude) and 128 mel bands,
computed from the same loaded 16 kHz mono audio as the CNN's features (the whole clip, as the
seed projects did, without trimming), with librosa's default frames (2048 / 512).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.fft

from ser_cnn.audio.io import SAMPLE_RATE, AudioSource, load_audio
from ser_cnn.errors import ParameterError
from ser_cnn.features.logmel import mel_filters, power_spectrogram, power_to_db


@dataclass(frozen=True)
class ClassicConfig:
    """Settings of the 180-number classic feature vector (librosa's defaults, at 16 kHz)."""

    kind: ClassVar[str] = "classic"  # names the cache type in settings.json
    sample_rate: int = SAMPLE_RATE  # Hz
    n_fft: int = 2048  # samples: librosa's default frame (128 ms at 16 kHz)
    hop_length: int = 512  # samples: librosa's default hop (32 ms)
    n_mfcc: int = 40
    n_chroma: int = 12
    n_mels: int = 128

    @property
    def shape(self) -> tuple[int]:
        return (self.n_mfcc + self.n_chroma + self.n_mels,)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ClassicConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        if set(d) - names:
            raise ParameterError(f"unknown classic feature settings {sorted(set(d) - names)}")
        return cls(**d)

    def compute(self, source: AudioSource, *, sr: float | None = None) -> np.ndarray:
        return classic_features(source, sr=sr, config=self)


DEFAULT_CLASSIC = ClassicConfig()


def classic_features(
    source: AudioSource, *, sr: float | None = None, config: ClassicConfig = DEFAULT_CLASSIC
) -> np.ndarray:
    """The seed projects' clip summary: MFCC, chroma and mel means over time.

    Parameters
    ----------
    source : path or np.ndarray
        Anything :func:`ser_cnn.audio.io.load_audio` takes.
    sr : float, optional
        Sample rate of an array ``source``.

    Returns
    -------
    np.ndarray, shape (180,), float32
        ``[0:40]`` MFCC means, ``[40:52]`` chroma means, ``[52:180]`` mel power means.
    """
    y = load_audio(source, sr=sr, target_sr=config.sample_rate)
    return classic_from_samples(y, config)


def classic_from_samples(y: np.ndarray, config: ClassicConfig = DEFAULT_CLASSIC) -> np.ndarray:
    """:func:`classic_features` of samples already at ``config.sample_rate``.

    Mel and MFCC equal librosa's ``melspectrogram`` and ``mfcc`` (a test checks this); the
    chroma is ser_cnn's own (see :func:`chroma_filters`). All in NumPy: librosa's first call
    costs about two seconds of imports, more than the rest of a one-clip prediction.
    """
    power = power_spectrogram(
        np.asarray(y, dtype=np.float32),
        n_fft=config.n_fft,
        win_length=config.n_fft,
        hop_length=config.hop_length,
    )
    sr = config.sample_rate
    mel = mel_filters(sr, config.n_fft, config.n_mels, 0.0, sr / 2) @ power
    mfcc = scipy.fft.dct(power_to_db(mel), type=2, norm="ortho", axis=0)[: config.n_mfcc]
    chroma = chroma_filters(sr, config.n_fft, config.n_chroma) @ np.sqrt(power)
    chroma /= np.maximum(chroma.max(axis=0, keepdims=True), 1e-10)  # each frame's peak is 1
    summary = np.concatenate([mfcc.mean(axis=1), chroma.mean(axis=1), mel.mean(axis=1)])
    return summary.astype(np.float32)


@functools.lru_cache(maxsize=4)
def chroma_filters(sr: int, n_fft: int, n_chroma: int = 12) -> np.ndarray:
    """Pitch-class weights of the STFT bins, shape (n_chroma, n_fft // 2 + 1).

    Each bin from C1 (32.7 Hz) to Nyquist is shared between the two pitch classes nearest to
    its frequency (equal temperament, A = 440 Hz), in proportion to closeness; row 0 is C.
    """
    hz = np.linspace(0, sr / 2, n_fft // 2 + 1)
    weights = np.zeros((n_chroma, len(hz)))
    usable = hz >= 440.0 * 2 ** (-57 / 12)  # C1: lower bins are too coarse to name a pitch
    position = (n_chroma * np.log2(hz[usable] / 440.0) + 9 * n_chroma / 12) % n_chroma
    below = np.floor(position).astype(int)
    share = position - below
    columns = np.flatnonzero(usable)
    weights[below % n_chroma, columns] += 1 - share
    weights[(below + 1) % n_chroma, columns] += share
    return weights.astype(np.float32)
