"""Per-mel-band statistics, and speaker normalisation built on them.

Voices differ more from one another than one voice differs between emotions: a low male voice
and a high female one put their energy in different mel bands whatever they feel. Speaker
normalisation standardises every speaker's log-mels with that speaker's own per-band mean and
std, taken over all of their recordings, so what is left is how a clip departs from the
speaker's usual voice.

The price is that a speaker-normalised model needs several recordings of the same speaker, or
one long one, at test time; a lone short clip can only be standardised by itself. The
statistics use no labels, and the test speakers' statistics come from their own clips only,
so no actor's audio informs another actor's features.
"""

from __future__ import annotations

import numpy as np

from ser_cnn.errors import ParameterError

STD_FLOOR = 1e-3  # dB: keeps a band that never changes (padding, a dead band) finite


def band_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each mel band over clips and frames.

    Parameters
    ----------
    features : np.ndarray, shape (n_clips, n_mels, n_frames)
        Log-mel tensors, in dB.

    Returns
    -------
    mean, std : np.ndarray, shape (n_mels,), float64
        ``std`` is at least ``STD_FLOOR``.
    """
    features = np.asarray(features)
    if features.ndim != 3 or len(features) == 0:
        raise ParameterError(
            f"expected a non-empty batch of log-mels (n_clips, n_mels, n_frames), "
            f"got shape {features.shape}"
        )
    mean = features.mean(axis=(0, 2), dtype=np.float64)
    std = features.std(axis=(0, 2), dtype=np.float64)
    return mean, np.maximum(std, STD_FLOOR)


class BandAccumulator:
    """:func:`band_statistics` of log-mels seen one batch at a time, in bounded memory.

    For a speaker's recordings at inference, which may be too long to hold at once::

        acc = BandAccumulator()
        for batch in batches:  # each (n, n_mels, n_frames)
            acc.add(batch)
        mean, std = acc.statistics()
    """

    def __init__(self) -> None:
        self.count = 0  # frames seen, per band
        self._sum: np.ndarray | None = None
        self._sum_sq: np.ndarray | None = None

    def add(self, features: np.ndarray) -> None:
        """Add log-mels of shape (n_clips, n_mels, n_frames)."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 3:
            raise ParameterError(f"expected (n_clips, n_mels, n_frames), got {features.shape}")
        sums, sums_sq = features.sum(axis=(0, 2)), np.square(features).sum(axis=(0, 2))
        self._add(sums, sums_sq, features.shape[0] * features.shape[2])

    def merge(self, other: BandAccumulator) -> None:
        """Add everything ``other`` has seen."""
        if other.count:
            self._add(other._sum, other._sum_sq, other.count)

    def _add(self, sums: np.ndarray, sums_sq: np.ndarray, count: int) -> None:
        if self._sum is not None and len(sums) != len(self._sum):
            raise ParameterError(f"expected {len(self._sum)} mel bands, got {len(sums)}")
        self._sum = sums if self._sum is None else self._sum + sums
        self._sum_sq = sums_sq if self._sum_sq is None else self._sum_sq + sums_sq
        self.count += count

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std (at least ``STD_FLOOR``) of each band, shape (n_mels,)."""
        if self._sum is None or self.count == 0:
            raise ParameterError("no log-mels were added: there is nothing to take statistics of")
        mean = self._sum / self.count
        var = np.maximum(self._sum_sq / self.count - np.square(mean), 0.0)
        return mean, np.maximum(np.sqrt(var), STD_FLOOR)


def normalize(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Standardise log-mels (n, n_mels, n_frames) band by band; float32 out."""
    mean = np.asarray(mean, dtype=np.float64)[:, None]
    std = np.asarray(std, dtype=np.float64)[:, None]
    return ((features - mean) / std).astype(np.float32)


def normalize_by_speaker(features: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Standardise each speaker's log-mels with that speaker's own band statistics.

    Parameters
    ----------
    features : np.ndarray, shape (n_clips, n_mels, n_frames)
        Log-mel tensors, in dB.
    speakers : array-like, shape (n_clips,)
        Who speaks in each clip (RAVDESS: the actor number).

    Returns
    -------
    np.ndarray, float32, same shape as ``features``
        Each speaker's clips with per-band mean 0 and std 1 over that speaker's clips and frames.
    """
    speakers = np.asarray(speakers)
    if speakers.shape != (len(features),):
        raise ParameterError(
            f"need one speaker per clip: {len(features)} clips, speakers of shape {speakers.shape}"
        )
    out = np.empty(np.shape(features), dtype=np.float32)
    for speaker in np.unique(speakers):
        mine = speakers == speaker
        out[mine] = normalize(features[mine], *band_statistics(features[mine]))
    return out
