"""Training settings of the CNN: a frozen dataclass, read from a config file, saved with each run.

``ser-cnn train`` exposes what a user needs (fold, epochs, seed, ...); every experiment knob is
set in a TOML or JSON file given with ``--config``, whose keys are the fields below and whose
``[architecture]`` table holds :class:`ser_cnn.model.CNNConfig`::

    # experiments/speed.toml
    speed = 0.1
    refit = true
    [architecture]
    dropout = 0.3

Unknown keys are refused, so a typo cannot silently train the default. One key is not a
training setting: ``run_name`` names the recipe's run folders and result files (default
``cnn_<file name>``; :func:`recipe_name`).

The defaults are the shipped recipe (``configs/robust_dropout.toml``, the recipe of
``checkpoints/ravdess_fold1``). :data:`STUDIO` is the recipe before it, the defaults until then
(``configs/studio.toml``). A saved training record (a run's ``config.json``, a result file)
is read with :meth:`TrainConfig.from_record`: a setting it lacks did not exist when it was
written, so it had its value from before, not today's default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ser_cnn.audio.degradations import CHAIN_KINDS
from ser_cnn.errors import ParameterError
from ser_cnn.model import CNNConfig

PRECISIONS = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings of the CNN; all of them are saved in the run's config.json.

    The defaults are the shipped recipe (``configs/robust_dropout.toml``); :data:`STUDIO` is
    the studio recipe, the defaults before it."""

    epochs: int = 50
    batch_size: int = 32
    learning_rate: float = 1e-3  # Adam; 3e-3 learned slower in 8-epoch trials on fold 1
    # The peak learning rate instead of learning_rate when training starts from a trained run
    # (`ser-cnn train --from RUN`, ser_cnn/training/finetune.py): its weights are a good start that
    # a high rate would undo. Chosen on URDU's validation speakers, folds 1-2, 15 epochs from the
    # shipped model: validation accuracy 0.620 at 1e-3, 0.699 at 3e-4, 0.700 at 1e-4 (a tie
    # within one clip; results/finetune_urdu_lr_check.json).
    finetune_learning_rate: float = 1e-4
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
    # Degraded copies of every training clip (ser_cnn/audio/degrade.py: speed, room reverberation,
    # room-tone padding, noise incl. babble of other training actors, gain, band limits,
    # codec), made from the audio once before training; each epoch shows every clip clean or
    # as one of its copies, at random, so an epoch costs what it did. 0 = off (the studio
    # recipe). 2, the robust recipe's: the studio model lost 0.06-0.45 accuracy under the
    # benchmark's conditions (noise, phone line, rooms, codec), the robust ones far less
    # (docs/results.md#robustness); 4 copies were tried (configs/robust_copies4.toml). Needs
    # the cache's source audio, and cannot be combined with speaker_norm.
    degraded_copies: int = 2
    # The chain's kinds used (ser_cnn.audio.degradations.CHAIN_KINDS); None = all.
    degradations: tuple[str, ...] | None = None
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
    # statistics over all of their clips (ser_cnn/features/speaker.py), test actors included, from
    # their unlabelled clips only. The model then needs several recordings of a speaker (or one
    # long one) at inference. Not with degraded copies (yet): set degraded_copies = 0 with it.
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
        if not (self.learning_rate > 0 and self.finetune_learning_rate > 0):
            raise ParameterError("learning_rate and finetune_learning_rate must be positive")
        if self.epochs < 1 or self.batch_size < 1:
            raise ParameterError(f"epochs and batch_size must be at least 1, got {self.epochs}")
        if self.precision not in PRECISIONS:
            raise ParameterError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 0 <= self.ema < 1:
            raise ParameterError(f"ema must be in [0, 1), got {self.ema}")
        if not 0 <= self.speed < 1:
            raise ParameterError(f"speed must be in [0, 1), got {self.speed}")
        if self.degraded_copies < 0:
            raise ParameterError(f"degraded_copies must be 0 or more, got {self.degraded_copies}")
        if self.speaker_norm and self.degraded_copies:
            raise ParameterError(
                f"speaker_norm cannot be combined with degraded_copies ({self.degraded_copies}; "
                "the default is 2) yet: set degraded_copies = 0 in the config file too"
            )

    def _check_degradations(self) -> None:
        kinds = self.degradations
        if isinstance(kinds, str) or not all(isinstance(k, str) for k in kinds):
            raise ParameterError(f"degradations must be a list of kinds, got {kinds!r}")
        unknown = sorted(set(kinds) - set(CHAIN_KINDS))
        if unknown:
            raise ParameterError(f"unknown degradations {unknown}; known: {', '.join(CHAIN_KINDS)}")
        object.__setattr__(self, "degradations", tuple(kinds))

    def _check_degradation_p(self) -> None:
        p = self.degradation_p
        if not isinstance(p, dict) or not all(
            k in CHAIN_KINDS and isinstance(v, int | float) and 0 <= v <= 1 for k, v in p.items()
        ):
            raise ParameterError(
                f"degradation_p must map kinds ({', '.join(CHAIN_KINDS)}) to probabilities "
                f"in [0, 1], got {p!r}"
            )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self) | {"architecture": self.architecture.to_dict()}
        return d | {
            "degradations": self.degradations and list(self.degradations),
            "snr_range": self.snr_range and list(self.snr_range),
        }

    @classmethod
    def from_record(cls, d: dict) -> TrainConfig:
        """A saved training record (a run's ``config.json``, a result file) as it was trained.

        Every setting is saved, but a record written before a setting existed lacks it, and
        trained without it: such a setting reads as its value from before (:data:`PLAIN`'s,
        float32 precision), never as today's default, which may have changed since (the
        studio recipe was the default when most records were written). Flat records
        (architecture keys beside the others) are nested first.
        """
        d = dict(d)
        arch_keys = {f.name for f in dataclasses.fields(CNNConfig)}
        nested = d.pop("architecture", None) or {}
        nested = {k: d.pop(k) for k in arch_keys if k in d} | nested
        before = _record_defaults()
        return cls.from_dict(before | d | {"architecture": before["architecture"] | nested})

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Validate and build; unknown keys are refused with the list of known ones. A key it
        lacks takes today's default: for a saved record use :meth:`from_record`."""
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
        """A copy with ``changes``; an ``architecture`` table changes only the keys it names."""
        d = self.to_dict()
        if isinstance(changes.get("architecture"), dict):
            changes["architecture"] = d["architecture"] | changes["architecture"]
        return TrainConfig.from_dict(d | changes)


# The studio recipe: no degraded copies, no utterance normalisation, dropout 0.3. The defaults
# until the robust recipe shipped, and the recipe of results/cv_cnn.json and its seeds, of the
# refit and speaker-normalised runs and of the first shipped model; configs/studio.toml sets
# the same explicitly.
STUDIO = TrainConfig(degraded_copies=0, architecture=CNNConfig(dropout=0.3, utterance_norm=False))
# Plain training: the studio recipe with no weight averaging. The ablation's baseline row, what
# describe() calls "no augmentation", and what a saved record lacking a setting had.
PLAIN = STUDIO.replace(ema=0.0)


def _record_defaults() -> dict:
    """What a saved record that lacks a setting trained with: the setting did not exist yet."""
    return PLAIN.replace(precision="float32").to_dict()


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
    """Read a TOML (``.toml``) or JSON file of training settings; ``overrides`` win.

    Keys the file leaves out take the defaults (the shipped recipe); ``run_name`` is not a
    training setting (:func:`recipe_name`) and is left aside.
    """
    d = _read_recipe(Path(path))
    d.pop(RUN_NAME_KEY, None)
    return TrainConfig.from_dict(d | overrides)


# The key of a config file that names its recipe's run folders and result files.
RUN_NAME_KEY = "run_name"
# The name of the defaults' runs: those of the file they equal (configs/robust_dropout.toml),
# so that `ser-cnn train --cv` and `ser-cnn train --cv --config configs/robust_dropout.toml`
# write the same results/cv_cnn_robust_dropout.json.
DEFAULT_RUN_NAME = "cnn_robust_dropout"


def recipe_name(path: str | os.PathLike | None, model: str = "cnn") -> str:
    """What a recipe's runs and result files are named after (``checkpoints/cv_<name>_seed0``,
    ``results/cv_<name>.json``, ``checkpoints/<name>_fold1_seed0``).

    ``<model>_<file name>`` (``configs/refit.toml`` -> ``cnn_refit``), unless the file sets
    ``run_name``: ``configs/studio.toml`` sets ``run_name = "cnn"``, the name its results were
    published under when it was the default. Without a file, the CNN's runs are named
    :data:`DEFAULT_RUN_NAME`, the MLP's ``mlp``.
    """
    if path is None:
        return DEFAULT_RUN_NAME if model == "cnn" else model
    name = _read_recipe(Path(path)).get(RUN_NAME_KEY)
    return f"{model}_{Path(path).stem}" if name is None else name


def _read_recipe(path: Path) -> dict:
    """A config file's table, its ``run_name`` checked."""
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
    name = d.get(RUN_NAME_KEY)
    if name is not None and not (isinstance(name, str) and name and Path(name).name == name):
        raise ParameterError(f"{path}: {RUN_NAME_KEY} must be a plain file name, got {name!r}")
    return d
