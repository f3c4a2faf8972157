"""Trial (issue 24, item 2): a frame-level head on the cached encoder states.

The shipped head sees each hidden state pooled into its mean and std over the clip's frames.
This trial gives the head the frames themselves: every layer standardised, weighed by learned
softmax weights, projected, one convolution over time, attentive statistics pooling (masked to
the clip's own frames), a dense layer. Same data, copies, class weights, optimiser, epoch
selection and splits as the concat head (configs/encoder_concat.toml, shipped when tried).

Plan, fixed before scoring: RAVDESS six folds, seed 0, decided on the 12 validation actors
(test read only after). Kept for a three-seed run only if its mean validation accuracy beats the
shipped head's seed-0 figure (results/cv_encoder_encoder_concat.json, per_seed[0]) by more than
0.01.

    python tools/frames_trial.py        # writes results/cv_encoder_frames.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from ser_cnn.encoder.cache import load_manifest, state_file
from ser_cnn.encoder.fit import HeadTraining, train_epochs
from ser_cnn.encoder.train import ravdess_parts
from ser_cnn.ravdess import EMOTIONS, load_folds, split
from ser_cnn.training.metrics import SCORES, evaluate, mean_std

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "data" / "encoder" / "ravdess"
COPIES = 2  # as the shipped recipe
STRIDE = 2  # frames averaged in pairs: 25 per second (40 ms) is fine for prosody, halves cost
WIDTH = 128  # projected frame width and convolution channels
KERNEL = 5  # frames (200 ms after the stride)
TRAINING = HeadTraining(copies=COPIES)  # epochs, patience, batch, AdamW rates: the shipped heads'
DROPOUT = 0.3


def load_frames(cache: Path, copies: int) -> tuple:
    """Every clip's states, frames averaged in pairs and zero-padded to the longest:
    (copies + 1, n, layers, frames, n_state) float16, and the frame counts (copies + 1, n)
    (a degraded copy may be longer than its clip: padding is one of the degradations)."""
    manifest = load_manifest(cache)
    states = [
        [np.load(cache / state_file(key, j)) for key in manifest["key"]] for j in range(copies + 1)
    ]
    lengths = np.array([[(s.shape[1] + STRIDE - 1) // STRIDE for s in c] for c in states])
    layers_n, _, n_state = states[0][0].shape
    x = np.zeros((copies + 1, len(manifest), layers_n, lengths.max(), n_state), "f2")
    for j, version in enumerate(states):
        for i, s in enumerate(version):
            s = s.astype("f4")
            s = np.pad(s, ((0, 0), (0, -s.shape[1] % STRIDE), (0, 0)), mode="edge")
            x[j, i, :, : lengths[j, i]] = s.reshape(layers_n, -1, STRIDE, n_state).mean(axis=2)
    return manifest, x, lengths


def build(layers_n, frames, n_state, n_classes, mean, std):
    import keras
    from keras import layers, ops

    from ser_cnn.encoder.head import layer_weights_class

    states = keras.Input((layers_n, frames, n_state), name="states")
    lengths = keras.Input((), dtype="int32", name="lengths")
    mask = ops.less(ops.expand_dims(ops.arange(frames), 0), ops.expand_dims(lengths, 1))
    mask = ops.expand_dims(ops.cast(mask, "float32"), -1)  # (batch, frames, 1)
    x = (states - mean) / std
    x = ops.transpose(x, (0, 2, 1, 3))  # (batch, frames, layers, n_state)
    x = layers.TimeDistributed(layer_weights_class()(name="layer_weights"))(x)
    x = layers.Dropout(DROPOUT)(x)
    x = layers.Dense(WIDTH, activation="relu")(x) * mask
    x = layers.Conv1D(WIDTH, KERNEL, padding="same", activation="relu")(x) * mask
    logits = layers.Dense(1)(layers.Dense(64, activation="tanh")(x))
    weights = ops.softmax(logits + (mask - 1.0) * 1e9, axis=1)
    mu = ops.sum(weights * x, axis=1)
    sd = ops.sqrt(ops.maximum(ops.sum(weights * x * x, axis=1) - mu * mu, 0.0) + 1e-5)
    h = layers.Dropout(DROPOUT)(ops.concatenate([mu, sd], axis=-1))
    h = layers.Dropout(DROPOUT)(layers.Dense(256, activation="relu")(h))
    out = layers.Dense(n_classes, activation="softmax")(h)
    return keras.Model([states, lengths], out)


def fit_fold(x, lengths, y, tr, va, seed):
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng([seed, 7])
    train = x[:, tr]
    # statistics of the training speakers' real frames, per layer and channel
    real = np.arange(x.shape[3])[None, :] < lengths[0, tr][:, None]
    frames = train[0].transpose(0, 2, 1, 3)[real].astype("f4")  # (frames, layers, n_state)
    mean = frames.mean(axis=0)[:, None, :]
    std = frames.std(axis=0)[:, None, :] + 1e-6
    model = build(*x.shape[2:], len(EMOTIONS), mean, std)
    l_tr = lengths[:, tr]
    index = np.arange(train.shape[1])

    def draw():
        version = rng.integers(len(train), size=len(index))
        return [train[version, index].astype("f4"), l_tr[version, index]]

    val = [x[0, va].astype("f4"), lengths[0, va]]
    config = dataclasses.replace(TRAINING, seed=seed)
    history = train_epochs(model, draw, y[tr], val, y[va], len(EMOTIONS), config)
    return model, history


def summarise(runs: dict, seed: int) -> dict:
    """The shape of tools/encoder_cv.py's result files (the report's trial table reads both)."""
    record = {
        fold: {**{k: r["test"][k] for k in SCORES}, "val": {k: r["val"][k] for k in SCORES}}
        | {"epochs": r["epochs_run"], "seconds": round(r["seconds"], 1)}
        for fold, r in runs.items()
    }
    return {
        "model": "frame-level encoder head (tools/frames_trial.py)",
        "protocol": "RAVDESS six folds",
        "training": {
            "copies": COPIES,
            "stride": STRIDE,
            "width": WIDTH,
            "kernel": KERNEL,
            "epochs": TRAINING.epochs,
            "patience": TRAINING.patience,
            "batch_size": TRAINING.batch_size,
            "learning_rate": TRAINING.learning_rate,
            "weight_decay": TRAINING.weight_decay,
            "dropout": DROPOUT,
        },
        "seeds": [seed],
        "labels": list(EMOTIONS),
        **mean_std(record.values()),
        "val": mean_std(r["val"] for r in record.values()),
        "runs": {str(seed): record},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "results" / "cv_encoder_frames.json"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    manifest, x, lengths = load_frames(CACHE, COPIES)
    y = manifest["emotion"].map(EMOTIONS.index).to_numpy()
    runs = {}
    for fold in sorted(load_folds()):
        started = time.perf_counter()
        tr, va, te = ravdess_parts(manifest, split(fold))
        model, history = fit_fold(x, lengths, y, tr, va, args.seed)
        answers = {
            part: model.predict([x[0, m].astype("f4"), lengths[0, m]], verbose=0).argmax(1)
            for part, m in (("val", va), ("test", te))
        }
        runs[str(fold)] = {
            "val": evaluate(y[va], answers["val"], labels=EMOTIONS),
            "test": evaluate(y[te], answers["test"], labels=EMOTIONS),
            "epochs_run": len(history),
            "seconds": time.perf_counter() - started,
        }
        print(fold, {k: round(runs[str(fold)][k]["accuracy"], 3) for k in ("val", "test")})
    summary = summarise(runs, args.seed)
    Path(args.out).write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: summary[k] for k in ("mean", "std")}, indent=1))


if __name__ == "__main__":
    main()
