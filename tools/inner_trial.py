"""Trial (issue 24, item 2): statistics from inside the encoder's blocks, on validation actors.

    python tools/inner_trial.py data/encoder/ravdess_noisy

The head sees the mean and spread of the five hidden states between the encoder's blocks. Each
block also holds two wider views of the clip that no head has seen: the residual stream after
its attention (before the MLP adds to it) and the MLP's hidden layer after GELU, four times as
wide. This pools them too (mean and spread over frames, as :func:`ser_cnn.encoder.head.pool`)
for every clip as recorded (copy 0: one clip, trimmed and levelled as the cache's clips), and
one more per-frame normalisation: the five states, each frame standardised before pooling. It
fits the head's logistic regression (``HeadTraining``'s C, classes balanced, standardised
statistics) on each published fold's training actors' clips, with and without them, scoring
each fold's two validation actors only: no test actor is read. The clean clips alone, so the
figures are comparable among the variants, not with the degraded-copy recipes. Writes
``results/inner_states_trial.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ser_cnn.audio.io import load_audio
from ser_cnn.encoder.cache import cache_settings, load_pooled, state_file
from ser_cnn.encoder.fit import HeadTraining
from ser_cnn.encoder.head import POOL_EPS, pool
from ser_cnn.encoder.light import LightEncoder, _normalize, gelu
from ser_cnn.features.logmel import WhisperFeatureConfig
from ser_cnn.ravdess import load_folds, split

OUT = Path("results/inner_states_trial.json")
# The pooled views each variant's head sees ("states": the usual head's).
VARIANTS = {
    "states": ("states",),
    "states + attention residuals": ("states", "attention"),
    "states + MLP hidden means": ("states", "mlp_mean"),
    "states + MLP hidden means and spreads": ("states", "mlp"),
    "states, each frame layer-normalised": ("frame_norm",),
}


def _frame_norm(states: np.ndarray) -> np.ndarray:
    """Each frame of each hidden state standardised over its n_state numbers (a LayerNorm
    without scale and shift): (n_layer + 1, frames, n_state), the same shape."""
    centred = states - states.mean(axis=-1, keepdims=True)
    return centred / np.sqrt(centred.var(axis=-1, keepdims=True) + POOL_EPS)


class _InnerEncoder(LightEncoder):
    """The light encoder, keeping each block's residual after attention and its MLP's hidden
    layer (one thread, so each block's row slices come in order). Its MLP step is the parent's
    with two copies taken; ``tests/test_encoder.py`` checks the copies against its states."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kept: dict[str, list[list[np.ndarray]]] = {}

    def _mlp(self, x, y, block, r):  # the parent's step, with two copies taken on the way
        i = next(k for k, b in enumerate(self.weights.blocks) if b is block)
        xr = x[r]
        xr += np.matmul(y[r], block.out_w)
        xr += block.out_b
        self.kept["attention"][i].append(xr.copy())
        h = np.matmul(_normalize(xr), block.fc1_w)
        h += block.fc1_b
        gelu(h)
        self.kept["mlp"][i].append(h.copy())
        xr += np.matmul(h, block.fc2_w)
        xr += block.fc2_b

    def inner(self, log_mel: np.ndarray) -> dict[str, np.ndarray]:
        """One clip's pooled inner views: {"attention": (n_layer, 2 n_state), "mlp": (n_layer,
        8 n_state)}."""
        n = len(self.weights.blocks)
        self.kept = {"attention": [[] for _ in range(n)], "mlp": [[] for _ in range(n)]}
        self.encode([log_mel])
        return {k: pool(np.stack([np.concatenate(s) for s in v])) for k, v in self.kept.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("cache", type=Path, help="a RAVDESS encoder cache (its clips as recorded)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    started = time.perf_counter()
    manifest, pooled = load_pooled(args.cache)
    settings = cache_settings(args.cache)
    features = WhisperFeatureConfig.from_dict(
        {k: v for k, v in settings["features"].items() if k != "kind"}
    )
    encoder = _InnerEncoder.load(settings["encoder"], threads=1)
    views: dict[str, list[np.ndarray]] = {"attention": [], "mlp": [], "frame_norm": []}
    for path, key in zip(manifest["path"], manifest["key"], strict=True):
        sr = features.sample_rate
        mel = features.compute(load_audio(path, target_sr=sr), sr=sr)  # as the cache's clips
        inner = encoder.inner(mel)
        views["attention"].append(inner["attention"].reshape(-1))
        views["mlp"].append(inner["mlp"].reshape(-1))
        cached = np.load(args.cache / state_file(key)).astype(np.float32)
        views["frame_norm"].append(pool(_frame_norm(cached)).reshape(-1))
    encoded = time.perf_counter() - started
    blocks = {"states": pooled[0].reshape(len(manifest), -1)} | {
        k: np.stack(v) for k, v in views.items()
    }
    # each block's pooled MLP hidden layer is its means, then its spreads: the means alone
    n_layer = len(encoder.weights.blocks)
    blocks["mlp_mean"] = blocks["mlp"].reshape(len(manifest), n_layer, 2, -1)[:, :, 0]
    blocks["mlp_mean"] = blocks["mlp_mean"].reshape(len(manifest), -1)
    y = manifest["emotion"].to_numpy()
    actors = manifest["speaker"].astype(int).to_numpy()
    c = HeadTraining().logistic_c
    scores: dict[str, dict[str, int]] = {name: {} for name in VARIANTS}
    for fold in load_folds():
        parts = split(fold)
        train, val = np.isin(actors, parts.train), np.isin(actors, parts.val)
        for name, seen in VARIANTS.items():
            x = np.hstack([blocks[k] for k in seen])
            scaler = StandardScaler().fit(x[train])
            with threadpool_limits(limits=2):
                fit = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
                fit.fit(scaler.transform(x[train]), y[train])
            right = fit.predict(scaler.transform(x[val])) == y[val]
            scores[name][str(fold)] = int(right.sum())
        print(f"fold {fold}: " + ", ".join(f"{k} {v[str(fold)]}" for k, v in scores.items()))
    n_val = {str(f): int(np.isin(actors, split(f).val).sum()) for f in load_folds()}
    result = {
        "cache": str(args.cache),
        "clips": "as recorded, copy 0",
        "fit": {"kind": "logistic", "C": c, "class_weight": "balanced", "standardised": True},
        "scored": "each fold's validation actors (no test actor read)",
        "validation_clips": n_val,
        "width": {name: sum(blocks[k].shape[1] for k in seen) for name, seen in VARIANTS.items()},
        "right": scores,
        "accuracy": {name: sum(s.values()) / sum(n_val.values()) for name, s in scores.items()},
        "seconds": {
            "encoding": round(encoded, 1),
            "total": round(time.perf_counter() - started, 1),
        },
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print({k: round(v, 4) for k, v in result["accuracy"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
