"""Six-fold cross-validation of heads on the frozen encoder's cached states (RAVDESS folds).

    python tools/encoder_cv.py CACHE --config configs/encoder.toml --seeds 0 1 2
    python tools/encoder_cv.py CACHE --logistic          # the probe of the issue: every layer's
                                                         # mean and std, a logistic regression

Each fold: the published test actors, the validation actors of ``ser_cnn.ravdess.split``, the
rest train (with their degraded copies, if the recipe uses them). Writes
``results/cv_encoder_<config stem>.json``: per seed and fold the test and validation scores and
the test probabilities, and the mean ± std over folds of the runs taken one by one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from ser_cnn.encoder.cache import cache_settings, load_states
from ser_cnn.encoder.fit import HeadTraining, fit_head
from ser_cnn.encoder.head import pool
from ser_cnn.metrics import SCORES, evaluate, mean_std
from ser_cnn.ravdess import EMOTIONS, load_folds, split

RESULTS = Path("results")


def pooled_versions(cache: Path, copies: int, *, clip_norm: bool):
    manifest, states = load_states(cache, copies=range(copies + 1))
    x = np.stack([np.stack([pool(s, clip_norm=clip_norm) for s in version]) for version in states])
    return manifest, x  # (versions, n, n_states, width)


def run_folds(manifest, x, config: HeadTraining | None, seed: int) -> dict:
    actors = manifest["speaker"].astype(int).to_numpy()
    y = manifest["emotion"].map(EMOTIONS.index).to_numpy()
    out = {}
    for fold in sorted(load_folds()):
        s = split(fold)
        tr, va, te = (np.isin(actors, getattr(s, p)) for p in ("train", "val", "test"))
        started = time.perf_counter()
        if config is None:
            probs_val, probs = _logistic(x[0, tr], y[tr], x[0, va], x[0, te], seed)
            epochs = None
        else:
            cfg = HeadTraining.from_dict(config.to_dict() | {"seed": seed})
            model, history = fit_head(x[:, tr], y[tr], x[0, va], y[va], len(EMOTIONS), cfg)
            probs_val = model.predict(x[0, va], verbose=0)
            probs = model.predict(x[0, te], verbose=0)
            epochs = len(history)
        test = evaluate(y[te], probs.argmax(1), EMOTIONS)
        val = evaluate(y[va], probs_val.argmax(1), EMOTIONS)
        out[str(fold)] = {
            **{k: test[k] for k in (*SCORES, "n", "confusion_matrix")},
            "val": {k: val[k] for k in SCORES},
            "epochs": epochs,
            "seconds": round(time.perf_counter() - started, 1),
            "test_keys": manifest.loc[te, "key"].tolist(),
            "test_probabilities": np.round(probs, 4).tolist(),
        }
        print(f"seed {seed} fold {fold}: test {test['accuracy']:.3f} val {val['accuracy']:.3f}")
    return out


def _logistic(x_train, y_train, x_val, x_test, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    clf = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=LOGISTIC_C, max_iter=2000, class_weight="balanced", random_state=seed),
    )
    clf.fit(flat(x_train), y_train)
    return clf.predict_proba(flat(x_val)), clf.predict_proba(flat(x_test))


LOGISTIC_C = 0.01  # inverse L2 strength on standardised features; fixed, not tuned on test


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("cache", type=Path)
    p.add_argument("--config", type=Path, help="TOML of HeadTraining settings")
    p.add_argument("--logistic", action="store_true", help="the logistic-regression probe")
    p.add_argument("--clip-norm", action="store_true", help="standardise each clip's layers")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--name", help="result name (default: the config's stem)")
    args = p.parse_args(argv)
    if args.logistic == (args.config is not None):
        p.error("give --config or --logistic")
    config = None
    if args.config:
        config = HeadTraining.from_dict(tomllib.loads(args.config.read_text()))
    clip_norm = config.head.clip_norm if config else args.clip_norm
    copies = config.copies if config else 0
    manifest, x = pooled_versions(args.cache, copies, clip_norm=clip_norm)
    runs = {str(seed): run_folds(manifest, x, config, seed) for seed in args.seeds}
    every = [fold for run in runs.values() for fold in run.values()]
    summary = {
        "model": "encoder head" if config else "logistic regression",
        "cache": cache_settings(args.cache),
        "training": config.to_dict() if config else {"C": LOGISTIC_C, "clip_norm": clip_norm},
        "seeds": args.seeds,
        "labels": list(EMOTIONS),
        **mean_std(every),
        "val": mean_std(f["val"] for f in every),
        "per_seed": {s: mean_std(r.values()) for s, r in runs.items()},
        "runs": runs,
    }
    name = args.name or (args.config.stem if args.config else "logistic")
    out = RESULTS / f"cv_encoder_{name}.json"
    out.write_text(json.dumps(summary, indent=1) + "\n")
    m, s = summary["mean"], summary["std"]
    print(f"{out}: " + ", ".join(f"{k} {m[k]:.3f} ± {s[k]:.3f}" for k in SCORES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
