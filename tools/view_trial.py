"""Trial (issue 24, item 2): the CNN's view of a clip beside the encoder's statistics.

    python tools/view_trial.py --data $RAVDESS_DIR --cache data/encoder/ravdess
    python tools/encoder_cv.py data/encoder/ravdess --config configs/encoder_logistic_view.toml \
        --view view

For every clip of an encoder cache and each of its degraded copies (the very same audio:
:func:`ser_cnn.encoder.cache.clip_version`), a summary of what the from-scratch CNN sees and
the encoder may not keep: the CNN's 64-band log-mel of the trimmed, level-set clip (each band's
mean and spread over frames, and the spread of its frame-to-frame change) and the clip's pitch
and loudness contour (YIN). Written to ``<cache>/view.copy<j>.npy`` (clips in the cache
manifest's order), read by ``tools/encoder_cv.py --view view``. ``--data`` is what the cache was
made from (the babble of a copy is drawn from its rows).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

import librosa
import numpy as np

from ser_cnn.audio.io import load_audio
from ser_cnn.corpora import load_many
from ser_cnn.encoder.cache import (
    cache_settings,
    clip_keys,
    clip_version,
    fold_group_pool,
    load_manifest,
)
from ser_cnn.errors import AudioError
from ser_cnn.features.cache import atomic_save
from ser_cnn.features.logmel import DEFAULT_CONFIG, levelled_speech, log_mel_from_samples
from ser_cnn.ravdess import load_folds

SR = DEFAULT_CONFIG.sample_rate  # Hz
HOP = DEFAULT_CONFIG.hop_length  # samples: 10 ms, the CNN's frames
F0_MIN, F0_MAX = 65.0, 500.0  # Hz: adult speech, shouting included
YIN_FRAME = 1024  # samples (64 ms): two periods of the lowest F0
VOICED_DB = 30.0  # dB: frames this close to the loudest count as speech for the pitch summary
VIEW_FILE = "view.copy{}.npy"
WIDTH = 3 * DEFAULT_CONFIG.n_mels + 9


def clip_view(y: np.ndarray) -> np.ndarray:
    """The CNN's view of one clip, summarised.

    Parameters
    ----------
    y : np.ndarray, shape (samples,)
        Mono audio at 16 kHz.

    Returns
    -------
    np.ndarray, shape (WIDTH,), float32
        ``[0:64]`` each log-mel band's mean (dB re the clip's level-set maximum), ``[64:128]``
        its std over frames, ``[128:192]`` the std of its frame-to-frame change; then pitch
        (semitones re 100 Hz) median, 10th and 90th percentile, their range, std of the
        frame-to-frame change; loudness (dB) 90th-10th percentile range and std of its change;
        the fraction of frames within 30 dB of the loudest; the trimmed clip's length in s.
    """
    y, _ = levelled_speech(y)
    mel = log_mel_from_samples(y)
    bands = [mel.mean(1), mel.std(1), np.diff(mel, axis=1).std(1)]
    f0 = librosa.yin(y, fmin=F0_MIN, fmax=F0_MAX, sr=SR, frame_length=YIN_FRAME, hop_length=HOP)
    rms = librosa.feature.rms(y=y, frame_length=YIN_FRAME, hop_length=HOP)[0]
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    speech = db > db.max() - VOICED_DB
    st = 12 * np.log2(f0[speech] / 100.0)
    p10, p50, p90 = np.percentile(st, [10, 50, 90])
    l10, l90 = np.percentile(db[speech], [10, 90])
    contour = [
        p50,
        p10,
        p90,
        p90 - p10,
        np.diff(st).std() if len(st) > 2 else 0.0,
        l90 - l10,
        np.diff(db[speech]).std() if speech.sum() > 2 else 0.0,
        speech.mean(),
        len(y) / SR,
    ]
    return np.concatenate([*bands, contour]).astype(np.float32)


def _views(args) -> list[tuple[int, int, np.ndarray]]:
    """Worker: every version of the clips ``rows`` (indices into the full manifest)."""
    manifest, rows, copies, seed, chain = args
    pool = fold_group_pool(load_folds())
    audio: dict[int, np.ndarray | None] = {}

    def samples(k: int) -> np.ndarray:
        if k not in audio:
            try:
                audio[k] = load_audio(manifest.at[k, "path"], target_sr=SR)
            except AudioError:
                audio[k] = None
        return audio[k]

    def usable(k: int) -> bool:
        return samples(k) is not None

    out = []
    for i in rows:
        for j in range(copies + 1):
            y = clip_version(
                manifest,
                i,
                j,
                sr=SR,
                seed=seed,
                pool=pool,
                samples=samples,
                usable=usable,
                chain=chain,
            )
            out.append((i, j, clip_view(y)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", action="append", required=True, help="what the cache was made of")
    p.add_argument("--cache", type=Path, required=True, help="the encoder cache")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    settings = cache_settings(args.cache)
    copies, seed = settings["copies"], settings["seed"]
    manifest, _ = load_many(args.data)
    manifest = manifest.reset_index(drop=True)
    manifest["key"] = clip_keys(manifest)
    cached = load_manifest(args.cache)["key"].tolist()
    row = {k: i for i, k in enumerate(manifest["key"])}
    rows = [row[k] for k in cached]
    started = time.perf_counter()
    chain = settings.get("chain")
    chunks = [(manifest, rows[w :: args.workers], copies, seed, chain) for w in range(args.workers)]
    with multiprocessing.get_context("fork").Pool(args.workers) as workers:
        done = {(i, j): v for part in workers.map(_views, chunks) for i, j, v in part}
    for j in range(copies + 1):
        atomic_save(args.cache / VIEW_FILE.format(j), np.stack([done[i, j] for i in rows]))
    (args.cache / "view.json").write_text(json.dumps({"width": WIDTH, "clips": len(rows)}) + "\n")
    print(
        f"{args.cache}: {len(rows)} clips × {copies + 1} in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
