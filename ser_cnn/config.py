"""Training settings of the CNN: a frozen dataclass, read from a config file, saved with each run.

``scripts/train.py`` exposes what a user needs (fold, epochs, seed, ...); every experiment knob
is set in a TOML or JSON file given with ``--config``, whose keys are the fields below and whose
``[architecture]`` table holds :class:`ser_cnn.model.CNNConfig`::

    # experiments/speed.toml
    speed = 0.1
    refit = true
    [architecture]
    utterance_norm = true

Unknown keys are refused, so a typo cannot silently train the default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ser_cnn.errors import ParameterError
from ser_cnn.model import CNNConfig

PRECISIONS = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings of the CNN; all of them are saved in the run's config.json."""

    epochs: int = 50
    batch_size: int = 32
    learning_rate: float = 1e-3  # Adam; 3e-3 learned slower in 8-epoch trials on fold 1
    patience: int = 20  # epochs without a better validation accuracy before stopping
    # What picks the best epoch (validation actors only). Not the loss: without augmentation
    # the model grows overconfident, and on fold 1 the validation loss bottomed out at epoch 15
    # while validation accuracy kept rising to epoch 31.
    monitor: str = "val_accuracy"
    seed: int = 0
    architecture: CNNConfig = field(default_factory=CNNConfig)
    class_weights: bool = True  # neutral has half as many clips as every other emotion
    # Augmentation is off by default: six folds with time shift + SpecAugment scored lower on
    # validation (0.561 against 0.617 without; results/cv_cnn_shift_specaugment.json): within
    # 50 epochs the augmented model underfits (training accuracy ~0.6).
    time_shift: int = 0  # frames: random circular shift of each training clip (30 = 0.3 s)
    freq_masks: int = 0  # SpecAugment: masks of up to freq_mask_width mel bands
    freq_mask_width: int = 8
    time_masks: int = 0  # SpecAugment: masks of up to time_mask_width frames
    time_mask_width: int = 25
    mixup_alpha: float = 0.0  # Beta(α, α) mixing of pairs of training clips; 0 = off
    noise_db: float = 0.0  # std of Gaussian noise added to the log-mel, in dB; 0 = off
    # Speed perturbation on the cached log-mel: factor drawn from 1 ± speed scales frequencies
    # by it (mel warp) and durations by its inverse (time stretch), like playing the clip
    # faster or slower; a cheap stand-in for other speakers' voices. 0 = off: good on fold 1
    # alone (results/ablation.json), it lowered validation over six folds on top of the robust
    # recipe (results/cv_cnn_robust_speed.json, docs/results.md#robustness).
    speed: float = 0.0
    # Degraded copies of every training clip (ser_cnn/degrade.py: speed, room reverberation,
    # room-tone padding, noise incl. babble of other training actors, gain, band limits,
    # codec), made from the audio once before training; each epoch shows every clip clean or
    # as one of its copies, at random, so an epoch costs what it did. 0 = off.
    degraded_copies: int = 0
    degradations: tuple[str, ...] | None = None  # kinds of degrade.AUGMENT_P used; None = all
    # Probabilities that replace degrade.AUGMENT_P's for the kinds named, e.g. {"noise": 0.6};
    # each kind draws from its own stream, so a higher probability keeps every copy that had
    # that kind as it was and degrades more of the others. None = AUGMENT_P.
    degradation_p: dict[str, float] | None = None
    snr_range: tuple[float, float] | None = None  # dB of added noise; None = degrade.SNR_RANGE
    # Arithmetic of the CNN body: "bfloat16" (mixed precision, float32 weights) trains about
    # twice as fast on CPUs with bfloat16 instructions and emulates them slowly elsewhere;
    # "auto" picks it only where the CPU has them. The exported model always runs in float32.
    precision: str = "auto"
    # Polyak averaging: validate, select and save an exponential moving average of the weights
    # (momentum per step; 0.99 ≈ the last 100 steps, three epochs) instead of the raw ones,
    # which two validation actors see jumping from epoch to epoch. 0 = off. Six folds:
    # validation accuracy 0.617 -> 0.625, test 0.548 -> 0.577 for seed 0, but seeds 1 and 2
    # scored 0.614 / 0.610 and 0.550 / 0.534 (results/cv_cnn*.json): within seed noise.
    ema: float = 0.99
    # Refit: train on the training *and* validation actors for exactly `epochs` epochs and keep
    # the last (weight-averaged) weights: no early stopping, no epoch chosen on validation.
    # Speaker-independent SER is starved of speakers (18 training actors per fold); this gives
    # it 20. The epoch count comes from the validated runs (best epochs 29-50 of 50 over three
    # seeds, cosine decay to the end). Six folds, seeds 0/1/2: test accuracy 0.580 / 0.588 /
    # 0.586 against 0.577 / 0.550 / 0.534 without (results/cv_cnn_refit*.json).
    refit: bool = False
    # Speaker normalisation: standardise every actor's log-mels with that actor's own per-band
    # statistics over all of their clips (ser_cnn/speaker.py), test actors included, from
    # their unlabelled clips only. The model then needs several recordings of a speaker (or one
    # long one) at inference.
    speaker_norm: bool = False

    def __post_init__(self) -> None:
        if self.degradations is not None:
            self._check_degradations()
        if self.degradation_p is not None:
            self._check_degradation_p()
        if self.snr_range is not None:
            object.__setattr__(self, "snr_range", tuple(self.snr_range))
            if len(self.snr_range) != 2 or not self.snr_range[0] < self.snr_range[1]:
                raise ParameterError(f"snr_range must be (low, high) in dB, got {self.snr_range}")
        if isinstance(self.architecture, dict):
            object.__setattr__(self, "architecture", CNNConfig.from_dict(self.architecture))
        if not isinstance(self.architecture, CNNConfig):
            raise ParameterError(
                f"architecture must be a table of CNN settings, got {self.architecture!r}"
            )
        if self.epochs < 1 or self.batch_size < 1:
            raise ParameterError(f"epochs and batch_size must be at least 1, got {self.epochs}")
        if self.precision not in PRECISIONS:
            raise ParameterError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 0 <= self.ema < 1:
            raise ParameterError(f"ema must be in [0, 1), got {self.ema}")
        if not 0 <= self.speed < 1:
            raise ParameterError(f"speed must be in [0, 1), got {self.speed}")

    def _check_degradations(self) -> None:
        from ser_cnn.degrade import AUGMENTATIONS  # only here: it loads pyroomacoustics

        kinds = self.degradations
        if isinstance(kinds, str) or not all(isinstance(k, str) for k in kinds):
            raise ParameterError(f"degradations must be a list of kinds, got {kinds!r}")
        unknown = sorted(set(kinds) - set(AUGMENTATIONS))
        if unknown:
            raise ParameterError(
                f"unknown degradations {unknown}; known: {', '.join(AUGMENTATIONS)}"
            )
        object.__setattr__(self, "degradations", tuple(kinds))

    def _check_degradation_p(self) -> None:
        from ser_cnn.degrade import AUGMENTATIONS  # only here: it loads pyroomacoustics

        p = self.degradation_p
        if not isinstance(p, dict) or not all(
            k in AUGMENTATIONS and isinstance(v, int | float) and 0 <= v <= 1 for k, v in p.items()
        ):
            raise ParameterError(
                f"degradation_p must map kinds ({', '.join(AUGMENTATIONS)}) to probabilities "
                f"in [0, 1], got {p!r}"
            )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self) | {"architecture": self.architecture.to_dict()}
        return d | {
            "degradations": self.degradations and list(self.degradations),
            "snr_range": self.snr_range and list(self.snr_range),
        }

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Validate and build; unknown keys are refused with the list of known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ParameterError(
                f"unknown training settings {sorted(unknown)}; known: {', '.join(sorted(known))}"
            )
        try:
            return cls(**d)
        except TypeError as err:
            raise ParameterError(f"bad training settings: {err}") from None

    def replace(self, **changes) -> TrainConfig:
        return TrainConfig.from_dict(self.to_dict() | changes)


# Plain training: the default with no weight averaging. The ablation's baseline row, and what
# describe() calls "no augmentation".
PLAIN = TrainConfig(ema=0.0)


def changes(training: dict) -> dict:
    """The settings of a saved training record that differ from :data:`PLAIN`, flat.

    Works on every record ser_cnn wrote: ``TrainConfig.to_dict()`` (architecture nested) and
    the flat records of older result files. Seed, epochs and precision are not recipe choices
    and are left out; a setting a record lacks had its plain value.
    """
    record = dict(training)
    record |= record.pop("architecture", None) or {}
    plain = PLAIN.to_dict()
    plain |= plain.pop("architecture")
    skip = {"seed", "epochs", "precision"}
    return {k: record[k] for k, v in plain.items() if k not in skip and record.get(k, v) != v}


def describe(training: dict) -> str:
    """A training record's recipe in words, e.g. "speed ±10%, weight averaging (EMA 0.99)"."""
    c = changes(training)
    words = {
        "speed": lambda v: f"speed ±{v:.0%}",
        "degraded_copies": lambda v: f"{v} degraded copies per clip",
        "degradation_p": lambda v: ", ".join(f"{k} in {p:.0%} of copies" for k, p in v.items()),
        "snr_range": lambda v: f"noise at {v[0]:g}-{v[1]:g} dB SNR",
        "time_shift": lambda v: f"time shift ±{v} frames",
        "mixup_alpha": lambda v: f"mixup α {v}",
        "noise_db": lambda v: f"noise {v} dB",
        "utterance_norm": lambda v: "utterance normalisation",
        "class_weights": lambda v: "no class weights",
        "speaker_norm": lambda v: (
            "**speaker-normalised** (each actor by their own band statistics)"
        ),
        "refit": lambda v: "**refit** on training + validation actors, last epoch",
        "ema": lambda v: f"weight averaging (EMA {v})",
    }
    if "freq_masks" in c or "time_masks" in c:
        c["masks"] = (c.pop("freq_masks", 0), c.pop("time_masks", 0))
        words["masks"] = lambda v: f"SpecAugment {v[0]}+{v[1]} masks"
    order = [
        "degraded_copies",
        "degradation_p",
        "snr_range",
        "speed",
        "time_shift",
        "masks",
        "mixup_alpha",
        "noise_db",
        "utterance_norm",
    ]
    order += ["class_weights", "speaker_norm", "refit", "ema"]
    order += [k for k in c if k not in order]
    parts = [words.get(k, lambda v, k=k: f"{k} {v}")(c[k]) for k in order if k in c]
    return ", ".join(parts) or "no augmentation"


def load_config(path: str | os.PathLike, **overrides) -> TrainConfig:
    """Read a TOML (``.toml``) or JSON file of training settings; ``overrides`` win."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ParameterError(f"cannot read the config file {path}: {err.strerror}") from None
    try:
        d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ParameterError(f"{path} is not valid {path.suffix[1:].upper()}: {err}") from None
    if not isinstance(d, dict):
        raise ParameterError(f"{path} must hold a table of settings")
    return TrainConfig.from_dict(d | overrides)
