"""Calibrated probabilities: one temperature per run, fitted on its validation actors.

A network trained with cross-entropy and selected on accuracy says 0.9 where it is right far
less often than nine times in ten. Temperature scaling (Guo et al., ICML 2017) divides every
log-probability by one number before the softmax::

    p_T = softmax(log p / T)

T > 1 softens the answers, T < 1 sharpens them, and the order of the emotions never changes,
so accuracy, UAR and F1 stay exactly as they were. Working from probabilities serves both
models: for the CNN's softmax output it equals softmax(logits / T), and the MLP's
``predict_proba`` has no logits to give.

T is fitted (:func:`fit_temperature`: the NLL minimised over log T) on the run's validation
actors only, never its test actors, and stored in its ``config.json``
(:class:`ser_cnn.run.Calibration`), which inference applies (``Recognizer(calibrated=True)``,
the default; ``calibrated=False`` gives the model's raw output). :func:`calibrate_run` does it
all and records the expected calibration error (ECE, 15 equal-width confidence bins) and NLL
before and after, on validation and test actors, in ``metrics.json`` (key "calibration"), with
a reliability diagram.

A refit run has trained on its validation actors, and no actor but the test actors is left to
fit on, which must never be used. It keeps T = 1, with that reason, unless it is given the mean
temperature of the validated runs of the same recipe (:func:`borrowed_calibration`), which
were fitted on validation actors too. The folds of a cross-validation can also share their
validation clips (:func:`pooled_calibration`, ``tools/calibrate.py --pool``): 120 clips of two
actors make a noisy fit.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_cnn.errors import DataError, ParameterError
from ser_cnn.run import Calibration, cv_folds, load_metrics, load_run, save_metrics

BINS = 15  # confidence bins of the ECE and the reliability diagram
BOUNDS = (0.05, 20.0)  # the temperatures fit_temperature searches
# log p of a probability a float32 softmax rounded to 0: just below the smallest it can hold
FLOOR = float(np.finfo(np.float32).smallest_subnormal)
METRICS_KEY = "calibration"
DIAGRAM = "reliability_diagram.png"
NOT_FITTED_REFIT = (
    "not fitted: a refit run trained on its validation actors and only its test actors are "
    "left, which are never fitted on; raw probabilities (temperature 1)"
)


# -- measures ----------------------------------------------------------------------------------


def _check(probs, y=None) -> tuple[np.ndarray, np.ndarray | None]:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise ParameterError(f"probabilities must have shape (n, classes >= 2), got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ParameterError("probabilities must be finite and non-negative")
    if y is None:
        return p, None
    y = np.asarray(y)
    if y.shape != (len(p),) or not np.issubdtype(y.dtype, np.integer):
        raise ParameterError(
            f"labels must be {len(p)} class indices (integers), got shape {y.shape} of {y.dtype}"
        )
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ParameterError(f"labels must lie in 0..{p.shape[1] - 1}")
    return p, y


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(p, FLOOR))


def reliability(probs, y, *, bins: int = BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean confidence, accuracy and clip count of each confidence bin.

    The confidence is the top probability; bin ``b`` of ``bins`` equal-width bins holds
    confidences in ``(b / bins, (b + 1) / bins]`` (the first also 0). Empty bins have
    confidence and accuracy NaN.

    Returns
    -------
    confidence, accuracy : np.ndarray of float, shape (bins,)
    count : np.ndarray of int, shape (bins,)
    """
    p, y = _check(probs, y)
    if not isinstance(bins, int) or bins < 1:
        raise ParameterError(f"bins must be a positive integer, got {bins!r}")
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(which, weights=correct, minlength=bins) / count
    return mean_conf, accuracy, count


def expected_calibration_error(probs, y, *, bins: int = BINS) -> float:
    """ECE: the clip-weighted mean gap between accuracy and confidence over confidence bins.

    Parameters
    ----------
    probs : array, shape (n, classes)
        Probabilities, one row per clip.
    y : array of int, shape (n,)
        True class indices.
    bins : int
        Equal-width confidence bins (15, as Guo et al.).

    Returns
    -------
    float
        0 for perfect calibration; at most 1.
    """
    confidence, accuracy, count = reliability(probs, y, bins=bins)
    full = count > 0
    return float(np.sum(count[full] * np.abs(accuracy[full] - confidence[full])) / count.sum())


def ece_floor(probs, *, bins: int = BINS, draws: int = 200, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model with these probabilities would show on this many
    clips: the mean ECE over ``draws`` label sets drawn from the probabilities themselves.

    ECE is biased upwards on few clips (each bin's accuracy is a noisy estimate): on 240 clips
    of 15 bins, 0.05 to 0.06 for the shipped model's confidences. A measured ECE near this
    floor is as good as those clips can show.
    """
    p, _ = _check(probs)
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    eces = []
    for _ in range(draws):
        u = rng.random((len(p), 1))
        y = np.minimum((u > cumulative).sum(axis=1), p.shape[1] - 1)
        eces.append(expected_calibration_error(p, y, bins=bins))
    return float(np.mean(eces))


def nll(probs, y) -> float:
    """Mean negative log-likelihood of the true classes (nats); a probability of 0 counts as
    the smallest a float32 can hold."""
    p, y = _check(probs, y)
    return float(-np.mean(_log(p[np.arange(len(y)), y])))


def scores(probs, y, *, bins: int = BINS) -> dict:
    """``{"n", "accuracy", "ece", "ece_floor", "nll"}`` of probabilities against true classes
    (:func:`ece_floor`: what a perfectly calibrated model would show on as many clips)."""
    p, y = _check(probs, y)
    return {
        "n": len(y),
        "accuracy": float(np.mean(p.argmax(axis=1) == y)),
        "ece": expected_calibration_error(p, y, bins=bins),
        "ece_floor": ece_floor(p, bins=bins),
        "nll": nll(p, y),
    }


# -- temperature scaling -----------------------------------------------------------------------


def apply_temperature(probs, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` of each row: calibrated probabilities, the argmax unchanged.

    Parameters
    ----------
    probs : array, shape (n, classes)
        Raw probabilities (the CNN's softmax output, the MLP's ``predict_proba``).
    temperature : float
        T > 0. At 1 the probabilities come back unchanged (the same array).

    Returns
    -------
    np.ndarray of float64, shape (n, classes); rows sum to 1
    """
    t = float(temperature)
    if not (np.isfinite(t) and t > 0):
        raise ParameterError(f"temperature must be a positive number, got {temperature!r}")
    if t == 1.0:
        return probs
    p, _ = _check(probs)
    z = _log(p) / t
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def fit_temperature(probs, y, *, bounds: tuple[float, float] = BOUNDS) -> float:
    """The temperature that minimises the NLL of ``apply_temperature(probs, T)`` against ``y``.

    A bounded one-dimensional search over log T (scipy's ``minimize_scalar``), in ``bounds``.
    Fit it on held-out clips the model never trained on (its validation actors), never on the
    clips it will be judged on.

    Parameters
    ----------
    probs : array, shape (n, classes)
        Raw probabilities.
    y : array of int, shape (n,)
        True class indices.
    bounds : (float, float)
        Lowest and highest temperature considered.

    Returns
    -------
    float
    """
    from scipy.optimize import minimize_scalar

    p, y = _check(probs, y)
    lo, hi = bounds
    if not 0 < lo < 1 < hi:
        raise ParameterError(f"bounds must satisfy 0 < low < 1 < high, got {bounds}")
    logp = _log(p)

    def loss(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(log_norm - z[np.arange(len(y)), y]))

    best = minimize_scalar(
        loss, bounds=(np.log(lo), np.log(hi)), method="bounded", options={"xatol": 1e-6}
    )
    return float(np.exp(best.x))


# -- the reliability diagram -------------------------------------------------------------------


def plot_reliability(
    panels: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    *,
    bins: int = BINS,
    title: str = "",
) -> Path:
    """Reliability diagrams, two per row, as a PNG.

    Each panel shows the accuracy of each confidence bin (bars) against the diagonal of
    perfect calibration, the share of clips per bin (grey) and the panel's ECE and NLL.

    Parameters
    ----------
    panels : mapping of str to (probabilities, true classes)
        Panel title -> what it shows, e.g. ``{"before": (raw, y), "after (T = 1.8)": (cal, y)}``.
    path : path
        The PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not panels:
        raise ParameterError("plot_reliability needs at least one panel")
    n = len(panels)
    cols = min(2, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.4 * rows), squeeze=False)
    edges = np.linspace(0, 1, bins + 1)
    for ax, (name, (probs, y)) in zip(axes.flat, panels.items(), strict=False):
        _, accuracy, count = reliability(probs, y, bins=bins)
        width = {"width": 1 / bins, "align": "edge"}
        ax.bar(edges[:-1], count / count.sum(), color="0.85", label="share of clips", **width)
        ax.bar(
            edges[:-1],
            np.nan_to_num(accuracy),
            fill=False,
            edgecolor="tab:blue",
            linewidth=1.2,
            label="accuracy",
            **width,
        )
        ax.plot([0, 1], [0, 1], "--", color="tab:red", linewidth=1, label="calibrated")
        s = scores(probs, y, bins=bins)
        ax.set_title(f"{name}\nECE {s['ece']:.3f}, NLL {s['nll']:.3f}, n {s['n']}", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top probability)")
        ax.set_ylabel("accuracy")
        ax.legend(loc="upper left", fontsize=8)
    for ax in axes.flat[n:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- a run folder ------------------------------------------------------------------------------


@dataclass
class RunCalibration:
    """What :func:`calibrate_run` did to one run folder."""

    run_dir: Path
    model: str
    calibration: Calibration
    scores: dict  # what metrics.json holds under "calibration"
    # raw probabilities and true classes per part ("test", and "val" unless refit)
    probabilities: dict[str, tuple[np.ndarray, np.ndarray]]


def before_after(probs, y, temperature: float, *, bins: int = BINS) -> dict:
    """``{"before": scores, "after": scores}`` of raw and temperature-scaled probabilities."""
    return {
        "before": scores(probs, y, bins=bins),
        "after": scores(apply_temperature(probs, temperature), y, bins=bins),
    }


def calibrate_run(
    run_dir: str | os.PathLike,
    cache_dir: str | os.PathLike,
    *,
    calibration: Calibration | None = None,
    bins: int = BINS,
    plot: bool = True,
) -> RunCalibration:
    """Fit a run's temperature on its validation actors and store it in its folder.

    The run's raw probabilities on its validation and test actors come from the cache
    (:func:`ser_cnn.cv.run_probabilities`, the code that scores ensembles); T is fitted on the
    validation actors alone. A refit run, which trained on them, keeps T = 1 with the reason
    (:data:`NOT_FITTED_REFIT`) unless ``calibration`` is given. The run's ``config.json`` gets
    the :class:`Calibration`, its ``metrics.json`` a "calibration" entry (T, where it came from,
    and accuracy, ECE and NLL before and after on the test actors and on the validation actors),
    and the folder a ``reliability_diagram.png`` of the test actors. Running it again replaces
    all three; the model files are not touched.

    Parameters
    ----------
    run_dir : path
        A CNN or MLP run folder with an actor-wise split.
    cache_dir : path
        A cache made with the run's feature settings.
    calibration : Calibration, optional
        Store this instead of fitting: a temperature fitted elsewhere on validation actors that
        are none of this run's test actors, e.g. :func:`borrowed_calibration` for a refit run,
        or one fitted on several folds' validation actors (``tools/calibrate.py --pool``).
    bins : int
        Confidence bins of the ECE.
    plot : bool
        Write the reliability diagram.

    Raises
    ------
    DataError
        A run that is not split by actors, or a cache that does not fit it.
    """
    from ser_cnn.cv import run_probabilities

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    parts = ("test",) if run.refit else ("val", "test")
    probabilities = run_probabilities(run_dir, cache_dir, parts=parts)
    if calibration is None:
        calibration = (
            Calibration(1.0, NOT_FITTED_REFIT)
            if run.refit
            else fitted_calibration(*probabilities["val"], actors=run.split["val"])
        )
    t = calibration.temperature
    entry = {
        "method": "temperature scaling: softmax(log p / T)",
        "temperature": t,
        "fitted_on": calibration.fitted_on,
        "bins": bins,
        "test": before_after(*probabilities["test"], t, bins=bins),
        # where T was fitted (unless it came from elsewhere): "after" is in-sample there
        "validation": before_after(*probabilities["val"], t, bins=bins)
        if "val" in probabilities
        else None,
    }
    dataclasses.replace(run, calibration=calibration).save(run_dir)
    metrics = load_metrics(run_dir)
    metrics[METRICS_KEY] = entry
    save_metrics(run_dir, metrics)
    if plot:
        p, y = probabilities["test"]
        actors = ", ".join(map(str, run.test_actors))
        plot_reliability(
            {"raw": (p, y), f"calibrated, T = {t:.2f}": (apply_temperature(p, t), y)},
            run_dir / DIAGRAM,
            bins=bins,
            title=f"{run.model.upper()}, test actors {actors}",
        )
    return RunCalibration(run_dir, run.model, calibration, entry, probabilities)


def fitted_calibration(probs, y, *, actors: Iterable[int], what: str = "") -> Calibration:
    """:func:`fit_temperature` on the clips of some validation actors, saying which."""
    actors = ", ".join(map(str, sorted(set(actors))))
    return Calibration(
        fit_temperature(probs, y), f"{what}validation actors {actors} ({len(y)} clips)"
    )


def pooled_calibration(
    validation: Mapping[str, tuple[np.ndarray, np.ndarray, Iterable[int]]],
    *,
    excluding: Iterable[int],
) -> Calibration:
    """One temperature fitted on the validation clips of several runs of one recipe, for a run
    whose test actors are ``excluding``: runs that validated on any of them are left out.

    Two validation actors (120 clips) make a noisy fit: a few confidently wrong clips of one
    actor can double T. The folds of a cross-validation share a recipe, so their validation
    clips together (each scored by its own fold's model) fit a steadier T; the folds that
    validated on this run's test actors are left out, so it never sees them.

    Parameters
    ----------
    validation : mapping of str to (probabilities, true classes, validation actors)
        Each run's raw probabilities on its own validation actors, by name (e.g. "fold2").
    excluding : iterable of int
        The test actors of the run the temperature is for.
    """
    excluding = set(excluding)
    used = {k: v for k, v in validation.items() if not excluding & set(v[2])}
    if not used:
        raise DataError(f"every run given validated on one of the test actors {excluding}")
    probs = np.concatenate([p for p, _, _ in used.values()])
    y = np.concatenate([y for _, y, _ in used.values()])
    actors = {a for _, _, v in used.values() for a in v}
    return fitted_calibration(probs, y, actors=actors, what=f"pooled over {', '.join(used)}: ")


def borrowed_calibration(run_dirs: Iterable[str | os.PathLike]) -> Calibration:
    """The mean temperature of calibrated, validated runs, to give refit runs of their recipe.

    Parameters
    ----------
    run_dirs : iterable of path
        Run folders, or ``--cv`` folders (their fold runs), each calibrated by
        :func:`calibrate_run` on its own validation actors.

    Raises
    ------
    DataError
        A refit or uncalibrated run among them, or none at all.
    """
    folders = []
    for d in run_dirs:
        d = Path(d)
        folders += [d] if (d / "config.json").is_file() else list(cv_folds(d).values())
    temperatures = []
    for folder in folders:
        run = load_run(folder)
        if run.refit or run.calibration is None:
            raise DataError(
                f"{folder} has no temperature fitted on validation actors: calibrate "
                "validated (not refit) runs first"
            )
        temperatures.append(run.calibration.temperature)
    if not temperatures:
        raise DataError("borrowed_calibration needs at least one calibrated run")
    return Calibration(
        float(np.mean(temperatures)),
        f"borrowed: mean temperature of {len(temperatures)} validated runs of the recipe "
        f"({', '.join(str(f) for f in folders)}), each fitted on its own validation actors",
    )
