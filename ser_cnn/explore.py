"""Helpers for the notebooks: a dataset table without preprocessing, and prosodic cues."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ser_cnn.audio.io import SAMPLE_RATE, audio_info, load_audio
from ser_cnn.ravdess import scan


def dataset_table(root: str | os.PathLike) -> pd.DataFrame:
    """One row per RAVDESS clip under ``root``: every name field and the duration in seconds.

    Reads file headers only (no decoding), so the full set takes about a second.
    """
    clips, _ = scan(root)
    rows = []
    for clip in clips:
        info = audio_info(clip.path)
        rows.append({**clip.to_dict(), "duration": info.frames / info.samplerate})
    return pd.DataFrame(rows)


def prosody(source, *, sr: float | None = None) -> dict[str, float]:
    """Prosodic cues of one clip: pitch (librosa's pYIN), loudness and voicing.

    Returns
    -------
    dict
        ``pitch_median_hz`` and ``pitch_range_st`` (10th–90th percentile, in semitones) over
        voiced frames; ``rms_db`` (mean frame energy, dB re full scale, over voiced frames);
        ``voiced_fraction`` (share of frames with a pitch: more pauses, lower value).
    """
    import librosa

    y = load_audio(source, sr=sr)
    f0, voiced, _ = librosa.pyin(
        y, fmin=65.0, fmax=600.0, sr=SAMPLE_RATE, frame_length=1024, hop_length=320
    )
    rms = librosa.feature.rms(y=y, frame_length=1024, hop_length=320)[0][: len(voiced)]
    pitch = f0[voiced]
    if pitch.size == 0:
        return {
            "pitch_median_hz": np.nan,
            "pitch_range_st": np.nan,
            "rms_db": np.nan,
            "voiced_fraction": 0.0,
        }
    lo, hi = np.percentile(pitch, [10, 90])
    return {
        "pitch_median_hz": float(np.median(pitch)),
        "pitch_range_st": float(12 * np.log2(hi / lo)),
        "rms_db": float(20 * np.log10(np.mean(rms[voiced[: len(rms)]]) + 1e-10)),
        "voiced_fraction": float(np.mean(voiced)),
    }
