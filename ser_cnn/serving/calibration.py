"""Calibrated probabilities as inference applies them, and how calibration is measured.

A network trained with cross-entropy and selected on accuracy says 0.9 where it is right far
less often than nine times in ten. Temperature scaling (Guo et al., ICML 2017) divides every
log-probability by one number before the softmax::

    p_T = softmax(log p / T)

T > 1 softens the answers, T < 1 sharpens them, and the order of the emotions never changes,
so accuracy, UAR and F1 stay exactly as they were. Working from probabilities serves both
models: for the CNN's softmax output it equals softmax(logits / T), and the MLP's
``predict_proba`` has no logits to give.

This module is what serving needs and nothing that fits: :func:`apply_temperature` (inference
applies the T a run folder stores, :class:`ser_cnn.run.Calibration`) and the measures, the
expected calibration error (ECE, 15 equal-width confidence bins), its floor, and the NLL.
Fitting T to a run (on its validation actors, never its test actors), pooled and borrowed
temperatures and the reliability diagrams are :mod:`ser_cnn.training.calibrate`'s, which reads
training data; inference never imports it.
"""

from __future__ import annotations

import numpy as np

from ser_cnn.errors import ParameterError

BINS = 15  # confidence bins of the ECE and the reliability diagram
# log p of a probability a float32 softmax rounded to 0: just below the smallest it can hold
FLOOR = float(np.finfo(np.float32).smallest_subnormal)


# -- measures ----------------------------------------------------------------------------------


def check_probabilities(probs, y=None) -> tuple[np.ndarray, np.ndarray | None]:
    """``probs`` as float64 rows of probabilities and ``y`` as class indices, or a
    ParameterError saying what is wrong with them."""
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


def log_probabilities(p: np.ndarray) -> np.ndarray:
    """log p, a probability of 0 counted as the smallest a float32 can hold (:data:`FLOOR`)."""
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
    p, y = check_probabilities(probs, y)
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
    p, _ = check_probabilities(probs)
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
    p, y = check_probabilities(probs, y)
    return float(-np.mean(log_probabilities(p[np.arange(len(y)), y])))


def scores(probs, y, *, bins: int = BINS) -> dict:
    """``{"n", "accuracy", "ece", "ece_floor", "nll"}`` of probabilities against true classes
    (:func:`ece_floor`: what a perfectly calibrated model would show on as many clips)."""
    p, y = check_probabilities(probs, y)
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
    p, _ = check_probabilities(probs)
    z = log_probabilities(p) / t
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)
