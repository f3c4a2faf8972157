"""Fit the head on pooled encoder states: training speakers fit, validation speakers select.

Each epoch every training clip is seen once, as itself or as one of its degraded copies (drawn
uniformly, seeded), as the CNN's robust recipe does. The epoch whose weights score best on the
validation speakers is kept; test speakers are never seen here. Or (``fit = "logistic"``, the
shipped recipe) a linear head is fitted in one go as a logistic regression on every clip and
every copy: no epochs to select, so validation speakers only report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ser_cnn.audio.denoise import DenoiseConfig
from ser_cnn.audio.dereverb import DereverbConfig
from ser_cnn.audio.front_end import FrontEnd
from ser_cnn.encoder.head import (
    GATE_LAYER,
    HOME_GATE_LAYER,
    NOISY_LAYER,
    OUTPUT_LAYER,
    WIDE_LAYER,
    WIDE_NOISY_LAYER,
    HeadConfig,
    build_head,
)
from ser_cnn.errors import ParameterError

FITS = ("gradient", "logistic")
NUISANCES = ("", "speaker")
GATE_AGAINST = ("recorded", "usual")  # HeadTraining.gate_against
LOGISTIC_ITER = 5000  # L-BFGS steps: the fit runs to convergence, not to a budget
ABSENT_LOGIT = -30.0  # bias of a class no training clip has: its probability is ~1e-13


@dataclass(frozen=True)
class HeadTraining:
    """How the head is trained; stored with each run beside its :class:`HeadConfig`."""

    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 1e-3  # AdamW
    weight_decay: float = 1e-2
    patience: int = 15  # epochs without a better validation accuracy before stopping
    # Keep the epoch the validation speakers like best; False: train all epochs and keep the
    # last (validation then measures the head without having chosen it).
    select: bool = True
    seed: int = 0
    class_weights: bool = True  # neutral has half as many clips as every other emotion
    copies: int = 2  # degraded copies of each training clip drawn from (0: clean only)
    # "gradient": AdamW epochs as above. "logistic": a linear head's softmax layer (hidden = 0)
    # fitted as a multinomial logistic regression on every version of every training clip:
    # convex and deterministic, so epochs, learning rate, seed and select do not apply.
    fit: str = "gradient"
    logistic_c: float = 0.01  # inverse L2 strength (scikit-learn's C) on standardised statistics
    # Fixed shares of the (logistic) fit for named corpora, e.g. {"ravdess": 0.5}: the training
    # corpora not named share the rest equally, classes balanced within each corpus (sample
    # weights). Empty: every clip counts alike (class_weights over all of them).
    corpus_share: dict[str, float] = dataclasses.field(default_factory=dict)
    # "speaker": before the logistic fit, remove from the standardised statistics every
    # direction along which training speakers differ within an emotion (nuisance attribute
    # projection, fitted on training speakers, folded into the softmax layer). "": none.
    nuisance: str = ""
    # With ``head.noise_gate``: the last ``noisy_copies`` of the copies always carry added noise
    # (``encoder.cache.NOISY_CHAIN``: ``tools/encode_cache.py --noisy N``). The usual output
    # layer and the statistics it standardises with come from the other versions (as without
    # the gate), the noisy expert from every version, the gate telling the noisy ones apart.
    noisy_copies: int = 0
    # What the gate tells those copies from: "recorded", the clips as recorded; "usual", every
    # usual version (as recorded and the usual copies, whose chain adds codecs, phone lines,
    # rooms and milder noise), so that those alone do not open it.
    gate_against: str = "recorded"
    # With ``head.home_gate``: the corpus whose clips alone fit the usual experts and the
    # statistics they standardise with (as if it were the only one); every training corpus
    # fits the wide experts, and the home gate tells this corpus's clips from the others'.
    home_corpus: str = ""
    # With ``head.home_gate``: the wide experts' logits divided by this (folded into their
    # weights). A clip from a corpus no expert heard opens the home gate, and the run's
    # temperature, fitted on the home corpus's validation speakers, leaves such answers too
    # sure; ``tools/encoder_cv.py --loco`` fits this factor on corpora left out of training
    # (``wide_temperature`` in its file). 1: the experts as fitted.
    wide_temperature: float = 1.0
    # The front end (:mod:`ser_cnn.audio.front_end`): spectral gating, before the Whisper
    # log-mel, of a clip buried in steady noise (:mod:`ser_cnn.audio.denoise`: its gate);
    # training versions pass through it only in a cache made as served. None: none.
    denoise: DenoiseConfig | None = None
    # The front end, after the denoiser: single-channel WPE of every clip, taking away a room's
    # late reverberation (:mod:`ser_cnn.audio.dereverb`). None: none.
    dereverb: DereverbConfig | None = None
    head: HeadConfig = dataclasses.field(default_factory=HeadConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ParameterError("epochs, batch_size and patience must be at least 1")
        if self.copies < 0:
            raise ParameterError(f"copies must be 0 or more, got {self.copies}")
        if self.fit not in FITS:
            raise ParameterError(f"fit must be one of {FITS}, got {self.fit!r}")
        if self.fit == "logistic" and (self.head.hidden or self.logistic_c <= 0):
            raise ParameterError(
                "a logistic fit needs a linear head (hidden = 0) and logistic_c > 0, got "
                f"hidden = {self.head.hidden}, logistic_c = {self.logistic_c}"
            )
        shares = self.corpus_share.values()
        if shares and (self.fit != "logistic" or min(shares) <= 0 or sum(shares) > 1):
            raise ParameterError(
                'corpus_share needs fit = "logistic" and shares above 0 that sum to at most 1, '
                f"got fit = {self.fit!r}, corpus_share = {self.corpus_share}"
            )

        if self.nuisance not in NUISANCES or (self.nuisance and self.fit != "logistic"):
            raise ParameterError(
                f'nuisance must be one of {NUISANCES} (a non-empty one needs fit = "logistic"), '
                f"got nuisance = {self.nuisance!r}, fit = {self.fit!r}"
            )

        if self.head.noise_gate != bool(self.noisy_copies) or (
            self.noisy_copies
            and (self.fit != "logistic" or self.nuisance or self.noisy_copies >= self.copies)
        ):
            raise ParameterError(
                'a noise gate (head.noise_gate) needs fit = "logistic", no nuisance and '
                "0 < noisy_copies < copies, and noisy_copies needs the gate; got noise_gate = "
                f"{self.head.noise_gate}, fit = {self.fit!r}, nuisance = {self.nuisance!r}, "
                f"noisy_copies = {self.noisy_copies}, copies = {self.copies}"
            )

        if self.head.home_gate != bool(self.home_corpus) or (
            self.home_corpus and (self.fit != "logistic" or self.nuisance or self.corpus_share)
        ):
            raise ParameterError(
                'a home gate (head.home_gate) needs fit = "logistic", no nuisance, no '
                "corpus_share and a home_corpus, and home_corpus needs the gate; got "
                f"home_gate = {self.head.home_gate}, fit = {self.fit!r}, "
                f"home_corpus = {self.home_corpus!r}"
            )

        if self.wide_temperature <= 0 or (self.wide_temperature != 1 and not self.home_corpus):
            raise ParameterError(
                "wide_temperature must be above 0, and other than 1 only with a home gate; got "
                f"{self.wide_temperature} with home_corpus = {self.home_corpus!r}"
            )

        if self.gate_against not in GATE_AGAINST:
            raise ParameterError(
                f"gate_against must be one of {GATE_AGAINST}, got {self.gate_against!r}"
            )

    @property
    def front_end(self) -> FrontEnd | None:
        """What a clip passes through before the log-mel when served; None: nothing."""
        if self.denoise is None and self.dereverb is None:
            return None
        return FrontEnd(denoise=self.denoise, dereverb=self.dereverb)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HeadTraining:
        d = dict(d)
        head = HeadConfig.from_dict(d.pop("head", {}))
        denoise, dereverb = d.pop("denoise", None), d.pop("dereverb", None)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ParameterError(f"unknown head training settings {sorted(unknown)}")
        denoise = None if denoise is None else DenoiseConfig.from_dict(denoise)
        dereverb = None if dereverb is None else DereverbConfig.from_dict(dereverb)
        return cls(**d, head=head, denoise=denoise, dereverb=dereverb)


def pooled_statistics(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean and std the head's first layer standardises with: over every training clip and
    version, per hidden state and position; ``train`` (versions, n, n_states, width).

    Returns
    -------
    mean, std : np.ndarray, each shape (n_states, width), float32 (std floored by 1e-6)
    """
    flat = train.reshape(-1, *train.shape[2:])
    return flat.mean(axis=0), flat.std(axis=0) + 1e-6


def head_statistics_of(
    train: np.ndarray, config: HeadTraining, corpora: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The statistics a head of ``config`` standardises with when it starts from nothing:
    :func:`pooled_statistics` of its training versions, a noise gate's always-noisy copies
    left out, and with a home gate only the home corpus's clips (``corpora``: each training
    clip's corpus), so that its usual output layer standardises as it would without the gates."""
    train = train[: len(train) - config.noisy_copies]
    return pooled_statistics(train[:, home_rows(config, corpora)])


def home_rows(config: HeadTraining, corpora: np.ndarray | None) -> np.ndarray | slice:
    """The training clips of ``config.home_corpus`` (a mask), or every clip (no home gate)."""
    if not config.home_corpus:
        return slice(None)
    home = None if corpora is None else np.asarray(corpora) == config.home_corpus
    if home is None or not home.any() or home.all():
        raise ParameterError(
            f"a home gate needs training clips of its home corpus {config.home_corpus!r} and of "
            "at least one other corpus, and each training clip's corpus"
        )
    return home


def fit_head(
    train: np.ndarray,
    y_train: np.ndarray,
    val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    config: HeadTraining = HeadTraining(),
    *,
    statistics: tuple[np.ndarray, np.ndarray] | None = None,
    start: Callable | None = None,
    corpora: np.ndarray | None = None,
    speakers: np.ndarray | None = None,
):
    """Train a head and return it at its best validation epoch (or its last, see ``select``).

    Parameters
    ----------
    train : np.ndarray, shape (versions, n, n_states, width)
        Pooled states of the training clips: version 0 as recorded, then degraded copies.
    y_train : np.ndarray of int, shape (n,)
    val : np.ndarray, shape (n_val, n_states, width)
    y_val : np.ndarray of int, shape (n_val,)
    n_classes : int
    config : HeadTraining
    statistics : (mean, std), optional
        What the head's first layer standardises with; default :func:`head_statistics_of`
        ``train`` (fine-tuning passes the source run's).
    start : callable, optional
        ``start(model)`` before training: fine-tuning copies a run's weights into the new head
        (:meth:`ser_cnn.training.finetune.HeadSource.transfer`); default: random weights.
    corpora : np.ndarray of str, shape (n,), optional
        Each training clip's corpus: needed where ``config.corpus_share`` names shares and
        for ``config.home_corpus``.
    speakers : np.ndarray, shape (n,), optional
        Each training clip's speaker (unique across corpora): needed for ``config.nuisance``.

    Returns
    -------
    model : keras.Model
    history : list of dict
        Per epoch: training loss and accuracy, validation accuracy.
    """
    import keras

    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng([config.seed, 7])
    # training speakers only
    mean, std = head_statistics_of(train, config, corpora) if statistics is None else statistics
    model = build_head(*train.shape[2:], n_classes, config.head, mean=mean, std=std)
    if config.fit == "logistic":
        if start is not None:
            raise ParameterError(
                'a logistic fit starts from nothing: fine-tune with fit = "gradient" (the default)'
            )
        weights = None
        if config.corpus_share:
            if corpora is None:
                raise ParameterError("corpus_share needs each training clip's corpus")
            weights = corpus_weights(corpora, y_train, config.corpus_share, config.class_weights)
        if config.nuisance and speakers is None:
            raise ParameterError(
                f"nuisance = {config.nuisance!r} needs each training clip's speaker"
            )
        groups = speakers if config.nuisance else None
        home = home_rows(config, corpora)
        return _fit_logistic(
            model, train, y_train, val, y_val, config, mean, std, weights, groups, home
        )
    if start is not None:
        start(model)
    index = np.arange(len(y_train))
    history = train_epochs(
        model,
        lambda: train[rng.integers(len(train), size=len(y_train)), index],
        y_train,
        val,
        y_val,
        n_classes,
        config,
    )
    return model, history


def train_epochs(model, draw: Callable, y_train, val, y_val, n_classes: int, config: HeadTraining):
    """Compile ``model`` (AdamW, ``config``'s rates) and train it epoch by epoch on ``draw()``'s
    inputs for ``y_train`` (each epoch draws again: a clip as recorded or one of its copies),
    with class weights when ``config.class_weights``; keep the weights of the epoch with the best
    accuracy on ``val`` (``config.select``, stopping after ``config.patience`` epochs without
    one), else the last. Returns the history: per epoch the loss, accuracy and validation
    accuracy. Any model whose inputs ``draw`` and ``val`` give trains so (tools/frames_trial.py's
    frame-level head too)."""
    import keras

    model.compile(
        optimizer=keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    counts = np.bincount(y_train, minlength=n_classes)
    weights = (
        {c: len(y_train) / (n_classes * counts[c]) for c in range(n_classes) if counts[c]}
        if config.class_weights
        else None
    )
    best, best_acc, since, history = None, -1.0, 0, []
    for _ in range(config.epochs):
        h = model.fit(
            draw(),
            y_train,
            batch_size=config.batch_size,
            epochs=1,
            class_weight=weights,
            shuffle=True,
            verbose=0,
        ).history
        val_acc = float(np.mean(model.predict(val, verbose=0).argmax(1) == y_val))
        history.append(
            {"loss": h["loss"][0], "accuracy": h["accuracy"][0], "val_accuracy": val_acc}
        )
        if not config.select:
            continue
        if val_acc > best_acc:
            best, best_acc, since = model.get_weights(), val_acc, 0
        else:
            since += 1
            if since >= config.patience:
                break
    if config.select:
        model.set_weights(best)
    return history


def corpus_weights(
    corpora: np.ndarray, y: np.ndarray, share: dict[str, float], balanced: bool = True
) -> np.ndarray:
    """Sample weights giving each corpus present its share of the total: the ``share`` of the
    corpora it names (scaled up where named corpora are absent), the rest split equally among
    the others; within a corpus, each class present alike (``balanced``) or each clip alike.

    Returns
    -------
    np.ndarray, shape (n,), float64, mean 1
    """
    names = sorted(set(corpora))
    others = [c for c in names if c not in share]
    rest = max(1.0 - sum(share[c] for c in names if c in share), 0.0)
    part = {c: share[c] if c in share else rest / len(others) for c in names}
    total = sum(part.values())
    w = np.zeros(len(y))
    for c in names:
        mine = corpora == c
        if balanced:
            counts = np.bincount(y[mine])
            w[mine] = part[c] / (np.count_nonzero(counts) * counts[y[mine]])
        else:
            w[mine] = part[c] / mine.sum()
    return w * len(y) / total


def nuisance_directions(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the directions along which ``groups`` (speakers) differ within
    a class: the span of each group's mean offset from its clips' class means.

    Parameters
    ----------
    x : np.ndarray, shape (n, d)
    y : np.ndarray of int, shape (n,)
    groups : np.ndarray, shape (n,)

    Returns
    -------
    np.ndarray, shape (d, k), float64, k < number of groups
    """
    x = np.asarray(x, np.float64)
    classes, cls = np.unique(y, return_inverse=True)
    offset = x - np.stack([x[cls == c].mean(axis=0) for c in range(len(classes))])[cls]
    names, grp = np.unique(groups, return_inverse=True)
    means = np.stack([offset[grp == g].mean(axis=0) for g in range(len(names))])
    _, s, vt = np.linalg.svd(means - means.mean(axis=0), full_matrices=False)
    return vt[s > s[0] * 1e-6].T if s[0] > 0 else np.zeros((x.shape[1], 0))


def _fit_logistic(
    model,
    train,
    y_train,
    val,
    y_val,
    config: HeadTraining,
    mean,
    std,
    weights,
    groups=None,
    home=slice(None),
):
    """Set the linear head's softmax layer to a multinomial logistic regression's fit on the
    standardised statistics of every version of every training clip (``weights``: each clip's
    sample weight instead of balanced classes; ``groups``: each clip's speaker, whose
    :func:`nuisance_directions` are projected out first); one history row. With a noise gate
    (``config.noisy_copies``) the usual layer leaves out the always-noisy versions, the noisy
    expert takes every version, and the gate is a logistic regression telling the clips as
    recorded (or every usual version, ``config.gate_against``) from the always-noisy ones.
    With a home gate (``home``: the home corpus's training clips) those layers see the home
    corpus alone, the wide ones every corpus, and the home gate tells the others from it."""
    from sklearn.linear_model import LogisticRegression

    versions, n = train.shape[:2]
    x = ((train - mean) / std).reshape(versions, n, -1)  # the head's Flatten order
    w = None if weights is None else np.broadcast_to(weights, (versions, n))
    usual = versions - config.noisy_copies  # the versions of the usual output layer
    basis = None
    if groups is not None:
        flat = x.reshape(versions * n, -1)
        basis = nuisance_directions(flat, np.tile(y_train, versions), np.tile(groups, versions))
        x = (flat - (flat @ basis) @ basis.T).reshape(versions, n, -1)

    def logistic(v, clips, target=None):
        """The fit on versions ``v`` of ``clips`` (each a slice or indices): of the emotions,
        or of ``target`` (a 0/1 for each of those versions of the clips, classes balanced)."""
        rows = x[v][:, clips]
        shape = rows.shape[:2]
        balanced = config.class_weights and weights is None
        if target is None:
            target = np.broadcast_to(y_train[clips], shape)
            sample = None if w is None else w[v][:, clips].reshape(-1)
        else:
            balanced, sample = True, None  # both sides weigh alike
        return LogisticRegression(
            C=config.logistic_c,
            max_iter=LOGISTIC_ITER,
            class_weight="balanced" if balanced else None,
        ).fit(rows.reshape(-1, x.shape[2]), np.reshape(target, -1), sample_weight=sample)

    def experts(usual_layer: str, noisy_layer: str, clips, temperature: float = 1.0) -> None:
        layers = [(usual_layer, slice(0, usual), basis)]
        if config.noisy_copies:
            layers.append((noisy_layer, slice(None), None))
        for name, v, projected in layers:
            _set_softmax(model.get_layer(name), logistic(v, clips), projected, temperature)

    def set_gate(layer: str, fit) -> None:
        model.get_layer(layer).set_weights(
            [fit.coef_.T.astype("float32"), fit.intercept_.astype("float32")]
        )

    experts(OUTPUT_LAYER, NOISY_LAYER, home)
    if config.noisy_copies:
        against = 1 if config.gate_against == "recorded" else usual
        kept = np.r_[0:against, usual:versions]  # the versions it tells apart
        clips = np.arange(n)[home]
        noisy = np.broadcast_to((kept >= usual)[:, None], (len(kept), len(clips)))
        set_gate(GATE_LAYER, logistic(kept, clips, noisy))
    if config.home_corpus:
        experts(WIDE_LAYER, WIDE_NOISY_LAYER, slice(None), config.wide_temperature)
        other = np.tile(~home, versions)  # home is a mask with a home gate (home_rows)
        set_gate(HOME_GATE_LAYER, logistic(slice(None), slice(None), other))
    p = model.predict(train.reshape(versions * n, *train.shape[2:]), verbose=0)
    y = np.tile(y_train, versions)
    history = {
        "loss": float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12))),
        "accuracy": float(np.mean(p.argmax(1) == y)),
        "val_accuracy": float(np.mean(model.predict(val, verbose=0).argmax(1) == y_val)),
    }
    return model, [history]


def _set_softmax(output, fit, basis, temperature: float = 1.0) -> None:
    """Set a softmax layer to a fitted multinomial logistic regression (``basis``: directions
    projected out before the fit, folded into the weights; its logits divided by
    ``temperature``); classes it never saw get :data:`ABSENT_LOGIT`."""
    coef, intercept = fit.coef_, fit.intercept_
    if basis is not None:  # w·(P x) = (P w)·x: the projection folds into the weights
        coef = coef - (coef @ basis) @ basis.T
    if len(fit.classes_) == 2:  # scikit-learn keeps one row: the second class's log-odds
        coef, intercept = np.vstack([0 * coef, coef]), np.concatenate([[0.0], intercept])
    kernel = np.zeros(output.kernel.shape, "float32")
    bias = np.full(output.bias.shape, ABSENT_LOGIT, "float32")
    kernel[:, fit.classes_], bias[fit.classes_] = coef.T / temperature, intercept / temperature
    output.set_weights([kernel, bias])
