"""Calibrate run folders: fit a run's temperature, store it, and show what it changed.

The temperature T of :mod:`ser_cnn.serving.calibration` (inference applies ``softmax(log p / T)``)
is fitted here (:func:`fit_temperature`: the NLL minimised over log T) on the run's validation
actors only, never its test actors, and stored in its ``config.json``
(:class:`ser_cnn.run.Calibration`). :func:`calibrate_run` does it all and records the expected
calibration error (ECE) and NLL before and after, on validation and test actors, in
``metrics.json`` (key "calibration"), with a reliability diagram. It scores the run from a
cache (:func:`ser_cnn.training.cv.run_probabilities`): training-time data, which is why serving code
never imports this module.

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
from ser_cnn.run import (
    Calibration,
    cv_folds,
    is_cv_folder,
    load_metrics,
    load_run,
    save_metrics,
)
from ser_cnn.serving.calibration import (
    BINS,
    apply_temperature,
    check_probabilities,
    log_probabilities,
    reliability,
    scores,
)

BOUNDS = (0.05, 20.0)  # the temperatures fit_temperature searches
METRICS_KEY = "calibration"
DIAGRAM = "reliability_diagram.png"
NOT_FITTED_REFIT = (
    "not fitted: a refit run trained on its validation actors and only its test actors are "
    "left, which are never fitted on; raw probabilities (temperature 1)"
)


# -- temperature scaling -----------------------------------------------------------------------


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

    p, y = check_probabilities(probs, y)
    lo, hi = bounds
    if not 0 < lo < 1 < hi:
        raise ParameterError(f"bounds must satisfy 0 < low < 1 < high, got {bounds}")
    logp = log_probabilities(p)

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
    (:func:`ser_cnn.training.cv.run_probabilities`, the code that scores ensembles); T is fitted on
    the validation actors alone. A refit run, which trained on them, keeps T = 1 with the reason
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
    from ser_cnn.training.cv import run_probabilities

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
        folders += list(cv_folds(d).values()) if is_cv_folder(d) else [d]
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
