"""Trial (issue 24): how the encoder's hidden states move, beside their mean and spread.

    python tools/delta_trial.py data/encoder/ravdess
    python tools/encoder_cv.py data/encoder/ravdess --config configs/encoder_logistic_delta.toml \
        --view delta

The shipped head sees each hidden state's mean and standard deviation over a clip's frames:
how much it varies, not how fast. This adds, for every hidden state of every layer, the
standard deviation of its frame-to-frame change (frames 20 ms apart), from the cached states
of each clip and degraded copy, written to ``<cache>/delta.copy<j>.npy`` (clips in the cache
manifest's order; shape (n_clips, (n_layer + 1) · n_state)) for ``tools/encoder_cv.py --view``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ser_cnn.encoder.cache import cache_settings, load_manifest, state_file
from ser_cnn.encoder.head import POOL_EPS
from ser_cnn.features.cache import atomic_save


def dynamics(states: np.ndarray) -> np.ndarray:
    """(n_layer + 1, frames, n_state) -> ((n_layer + 1) · n_state,): each state's std of its
    frame-to-frame change (0 for a one-frame clip)."""
    x = np.asarray(states, dtype=np.float32)
    step = np.diff(x, axis=1) if x.shape[1] > 1 else np.zeros_like(x)
    return np.sqrt(step.var(axis=1) + POOL_EPS).reshape(-1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("cache", type=Path, nargs="+", help="encoder caches")
    args = p.parse_args(argv)
    for cache in args.cache:
        started = time.perf_counter()
        keys = load_manifest(cache)["key"]
        copies = cache_settings(cache)["copies"]
        for j in range(copies + 1):
            rows = [dynamics(np.load(cache / state_file(k, j))) for k in keys]
            atomic_save(cache / f"delta.copy{j}.npy", np.stack(rows))
        print(f"{cache}: {len(keys)} clips × {copies + 1} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
