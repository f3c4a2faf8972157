"""A trained run folder: one schema (:class:`Run`), one writer, one reader.

The run folder links training to inference, so everything that shapes a prediction is written
here once and read back only through :func:`load_run`::

    <run>/
        config.json          the Run (format RUN_FORMAT): model kind, labels in output order,
                             feature settings, training settings (the CNN's architecture inside),
                             input normalisation, split, clips, versions, cost; the data
                             it was trained on and the run it was fine-tuned from ("from"),
                             where it was (null otherwise: keys a format-2 reader may lack)
        metrics.json         test scores (and validation scores, unless refit); after
                             ser_cnn.training.calibrate, their calibration before and after
        saved_model/         CNN: TensorFlow SavedModel, what inference loads
        model.keras          CNN: the Keras model, for further training (fine-tuning)
        model.skops          MLP: the scikit-learn pipeline (skops: loading runs no code)
        model.keras          encoder: the head on the frozen Whisper encoder (Keras, safe mode);
                             the encoder's weights are never here, the run names them ("encoder")
        model.tflite         CNN, optional: the SavedModel for LiteRT (ser_cnn.serving.runtime)
        model.npz            MLP, optional: the pipeline as plain arrays (ser_cnn.serving.runtime)
        head.npz             encoder: the head as plain arrays (ser_cnn.encoder.serve)
        history.csv          training_curves.png  confusion_matrix.png
        reliability_diagram.png   after ser_cnn.training.calibrate

People share run folders, so loading one never runs code from it: the MLP is a skops file
whose types are checked against a short allow-list, Keras files are loaded in safe mode, and
the SavedModel is a graph, not Python. Runs of format 1 (before this module) are upgraded in
memory when read; ``python -m ser_cnn.run DIR...`` rewrites them once, on disk.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ser_cnn.config import TrainConfig
from ser_cnn.encoder.fit import HeadTraining
from ser_cnn.encoder.whisper import PINNED, WhisperDimensions
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.features.classic import ClassicConfig
from ser_cnn.features.logmel import FeatureConfig, WhisperFeatureConfig
from ser_cnn.model import CNNConfig

RUN_FORMAT = 2  # bump when the layout above changes; load_run upgrades older formats
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
# Model kinds, in the order of every answer: the first loaded is the headline (Prediction.emotion)
MODELS = ("encoder", "cnn", "mlp")
# the reference, always there
MODEL_FILES = {"encoder": "model.keras", "cnn": "saved_model", "mlp": "model.skops"}
# the same models for the light runtimes, written after training (ser_cnn.serving.runtime); optional
LIGHT_FILES = {"encoder": "head.npz", "cnn": "model.tflite", "mlp": "model.npz"}
FEATURE_CONFIGS = {"encoder": WhisperFeatureConfig, "cnn": FeatureConfig, "mlp": ClassicConfig}
# Types a skops file of ours may hold beyond skops' own trusted defaults.
SKOPS_TRUSTED = ("sklearn.neural_network._stochastic_optimizers.AdamOptimizer",)


@dataclass(frozen=True)
class Normalization:
    """Per-mel-band statistics the CNN's first layer standardises with (also inside the model)."""

    band_mean: tuple[float, ...]  # dB
    band_std: tuple[float, ...]  # dB
    fitted_on: str  # which actors, e.g. "train actors"

    def __post_init__(self):
        # JSON gives lists, training gives arrays: store one type so a reloaded run equals itself
        object.__setattr__(self, "band_mean", tuple(float(v) for v in self.band_mean))
        object.__setattr__(self, "band_std", tuple(float(v) for v in self.band_std))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {
            "band_mean": list(self.band_mean),
            "band_std": list(self.band_std),
        }


@dataclass(frozen=True)
class Calibration:
    """The temperature that turns the model's raw probabilities into calibrated ones.

    Inference reports ``softmax(log p / temperature)`` (:func:`ser_cnn.serving.calibration.
    apply_temperature`); ``fitted_on`` says where the temperature came from, e.g. "validation
    actors 4, 9 (120 clips)", or why there is none (a refit run keeps 1).
    """

    temperature: float
    fitted_on: str

    def __post_init__(self) -> None:
        t = float(self.temperature)
        if not (math.isfinite(t) and t > 0):
            raise ParameterError(f"a temperature must be a positive number, got {t}")
        object.__setattr__(self, "temperature", t)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FrozenEncoder:
    """The pretrained encoder an encoder run's head was trained on; its weights are not in the
    run folder but in the installed weights package, which must be these (checked on loading).
    """

    # EncoderSource.to_dict(): the weights package, its version and the sha256 of its model.bin
    source: dict
    dimensions: WhisperDimensions

    def __post_init__(self) -> None:
        if not isinstance(self.source, dict) or set(self.source) != set(PINNED):
            raise ParameterError(
                f"an encoder source has the fields {sorted(PINNED)}, got {self.source!r}"
            )
        if isinstance(self.dimensions, dict):
            object.__setattr__(self, "dimensions", WhisperDimensions.from_dict(self.dimensions))

    def to_dict(self) -> dict:
        return {"source": dict(self.source), "dimensions": self.dimensions.to_dict()}


@dataclass(frozen=True)
class Run:
    """Everything known about one trained model, as stored in its ``config.json``."""

    model: str  # "encoder", "cnn" or "mlp"
    labels: tuple[str, ...]  # emotions in output order
    # encoder: Whisper's log-mel (stored with its kind, "whisper_logmel")
    features: FeatureConfig | ClassicConfig | WhisperFeatureConfig
    # CNN: TrainConfig (the architecture inside, precision as trained); MLP: the chosen
    # hidden sizes, alpha and epoch, the grid searched, and the seed; encoder: HeadTraining
    # (the head's architecture inside)
    training: TrainConfig | dict | HeadTraining
    # {"kind": "actor-wise", "fold", "train", "val", "test"} (RAVDESS actor numbers);
    # {"kind": "speaker-wise" or "clip-wise", "fold", "folds", "train", "val", "test", "note"}
    # (ser_cnn.corpora.splits: speakers as "corpus/speaker", clips as cache keys); or
    # {"kind": "random clips ..."}
    split: dict
    clips: dict  # clips per part
    normalization: Normalization | None = None  # CNN only
    parameters: int | None = None  # CNN only
    # written by ser_cnn.training.calibrate after training; None (older folders too): temperature 1
    calibration: Calibration | None = None
    cost: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    git_commit: str | None = None
    # what it was trained on, when given as data (`ser-cnn train --data`): the inputs, the
    # cache, clips per corpus and emotion; None: a cache (RAVDESS, as runs always were)
    data: dict | None = None
    # stored as "from": the run it was fine-tuned from (path, model, labels, split, seed, git
    # commit) and what was kept of it; None: trained from scratch
    source: dict | None = None
    # encoder runs only: the frozen encoder the head was trained on (its weights' source and
    # dimensions); None for the CNN and the MLP (their config.json has no "encoder" key)
    encoder: FrozenEncoder | None = None
    format: int = RUN_FORMAT

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise DataError(f"a run's model must be one of {MODELS}, got {self.model!r}")
        if (self.model == "encoder") != (self.encoder is not None):
            raise DataError("an encoder run, and only an encoder run, names its frozen encoder")
        object.__setattr__(self, "labels", tuple(self.labels))

    @property
    def seed(self) -> int:
        return self.training["seed"] if self.model == "mlp" else self.training.seed

    @property
    def architecture(self) -> CNNConfig | None:
        return self.training.architecture if self.model == "cnn" else None

    @property
    def speaker_normalized(self) -> bool:
        """Whether the model takes its input standardised per speaker: a CNN's log-mels
        (``speaker_norm = true``), an encoder head's pooled states (``[head] speaker_norm``)."""
        if self.model == "encoder":
            return self.training.head.speaker_norm
        return self.model == "cnn" and self.training.speaker_norm

    @property
    def refit(self) -> bool:
        return self.model == "cnn" and self.training.refit

    @property
    def temperature(self) -> float:
        """The temperature inference applies: 1 (raw probabilities) for an uncalibrated run."""
        return self.calibration.temperature if self.calibration else 1.0

    @property
    def whole_corpora(self) -> tuple[str, ...]:
        """Corpora every clip of which trained beside RAVDESS's folds (``ser-cnn train
        --extra-cache``, as the shipped encoder head): none of their speakers is unheard."""
        if not self.data or "caches" not in self.data:
            return ()
        return tuple(sorted(set(self.data["clips per corpus"]) - {"ravdess"}))

    @property
    def test_actors(self) -> tuple[int, ...] | tuple[str, ...]:
        """The test part of the split: RAVDESS actor numbers, or speakers (clips) of data."""
        return tuple(self.split.get("test", ()))

    def interface(self) -> dict:
        """What the model takes and gives: members of an ensemble must agree on all of it."""
        interface = {
            "labels": self.labels,
            "feature settings": self.features.to_dict(),
            "speaker normalisation": self.speaker_normalized,
        }
        if self.encoder is not None:  # one encoder, and its front end, serve every member
            interface["encoder"] = self.encoder.to_dict()
            front_end = self.training.front_end
            interface["front end"] = front_end and front_end.to_dict()
        return interface

    def to_dict(self) -> dict:
        d = {
            "format": self.format,
            "model": self.model,
            "labels": list(self.labels),
            "features": _features_to_dict(self.model, self.features),
            "training": self.training if self.model == "mlp" else self.training.to_dict(),
            "split": self.split,
            "clips": self.clips,
            "normalization": self.normalization and self.normalization.to_dict(),
            "parameters": self.parameters,
            "calibration": self.calibration and self.calibration.to_dict(),
            "cost": self.cost,
            "versions": self.versions,
            "git_commit": self.git_commit,
            "data": self.data,
            "from": self.source,
        }
        if self.encoder is not None:
            d["encoder"] = self.encoder.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Run:
        if d.get("format") == 1:
            d = _upgrade_format_1(d)
        if d.get("format") != RUN_FORMAT:
            raise DataError(
                f"run format {d.get('format')!r} is not one this ser_cnn reads "
                f"(1 or {RUN_FORMAT}); update ser_cnn"
            )
        model = d["model"]
        if model not in MODELS:
            raise DataError(f"a run's model must be one of {MODELS}, got {model!r}")
        features = _features_from_dict(model, d["features"])
        norm, calibration = d.get("normalization"), d.get("calibration")
        encoder = d.get("encoder")
        if model == "encoder":
            training = HeadTraining.from_dict(d["training"])
        elif model == "cnn":  # as trained: a setting the record lacks predates it, not today's
            training = TrainConfig.from_record(d["training"])
        else:
            training = d["training"]
        return cls(
            model=model,
            labels=d["labels"],
            features=features,
            training=training,
            split=d["split"],
            clips=d["clips"],
            normalization=Normalization(**norm) if norm else None,
            parameters=d.get("parameters"),
            calibration=Calibration(**calibration) if calibration else None,
            cost=d.get("cost", {}),
            versions=d.get("versions", {}),
            git_commit=d.get("git_commit"),
            data=d.get("data"),
            source=d.get("from"),
            encoder=FrozenEncoder(**encoder) if encoder else None,
        )

    def save(self, run_dir: str | os.PathLike) -> None:
        _write_json(Path(run_dir) / CONFIG_FILE, self.to_dict())


@dataclass
class RunResult:
    """What a training call returns: where the run went and the figures a summary needs."""

    run_dir: Path
    metrics: dict
    seconds: float
    epochs_run: int
    best_epoch: int
    seconds_per_epoch: float


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read and validate a run folder's ``config.json``; its model file must be there too."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise DataError(f"{run_dir} is not a run folder: it has no {CONFIG_FILE}")
    try:
        description = json.loads(path.read_text())
        if not isinstance(description, dict):
            raise TypeError(f"it holds a JSON {type(description).__name__}, not an object")
        run = Run.from_dict(description)
    except (KeyError, TypeError, ValueError, AttributeError, ParameterError) as err:
        raise DataError(f"{path} is not a valid ser_cnn run description: {err}") from None
    if not (run_dir / MODEL_FILES[run.model]).exists():
        hint = " (an old joblib MLP: run `python -m ser_cnn.run` on it)" * (run.model == "mlp")
        raise DataError(f"{run_dir} has no {MODEL_FILES[run.model]}{hint}")
    return run


def load_metrics(run_dir: str | os.PathLike) -> dict:
    return json.loads((Path(run_dir) / METRICS_FILE).read_text())


def save_metrics(run_dir: str | os.PathLike, metrics: dict) -> None:
    _write_json(Path(run_dir) / METRICS_FILE, metrics)


def write_run(run_dir: Path, run: Run, metrics: dict, curves: dict, *, title: str) -> None:
    """Write the description, the scores and the pictures every model's run folder has."""
    from ser_cnn.training.metrics import plot_confusion, plot_history

    run.save(run_dir)
    save_metrics(run_dir, metrics)
    plot_history(curves, run_dir / "training_curves.png", title=title)
    plot_confusion(
        metrics["confusion_matrix"], run.labels, run_dir / "confusion_matrix.png", title=title
    )


def fresh_dir(path: Path) -> None:
    """Empty ``path`` for a new run; refuse to wipe a folder that is not a run folder."""
    if path.exists():
        ours = (path / CONFIG_FILE).exists() or (path / "history.csv").exists()  # or interrupted
        if not ours and any(path.iterdir()):
            raise ParameterError(
                f"{path} exists and is not a ser_cnn run folder; choose another --out"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True)


def model_folders(path: str | os.PathLike) -> dict[str, Path]:
    """The run folder of each model kind in ``path``: a run folder, or one with cnn/ and mlp/."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(
            f"{path}: no such run folder; train one with `ser-cnn train` "
            "or leave out --run to use the shipped model"
        )
    folders = {}
    if (path / CONFIG_FILE).exists():
        try:
            model = json.loads((path / CONFIG_FILE).read_text()).get("model")
        except (ValueError, AttributeError):
            model = None
        if model not in MODELS:
            raise DataError(f"{path / CONFIG_FILE} is not a ser_cnn run description")
        folders[model] = path
    for m in MODELS:
        if (path / m / CONFIG_FILE).exists():
            folders[m] = path / m
    return folders


def is_cv_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``ser-cnn train --cv`` folder (fold runs ``fold1/`` ...), not a run
    folder or a folder of them (``cnn/``, ``mlp/``): the one place that tells them apart."""
    path = Path(path)
    return not (path / CONFIG_FILE).exists() and any(
        p.name[4:].isdigit() and (p / CONFIG_FILE).is_file() for p in path.glob("fold*")
    )


def cv_folds(cv_dir: str | os.PathLike) -> dict[int, Path]:
    """The fold runs of a ``ser-cnn train --cv`` folder (``fold1/`` ... ``fold6/``), by fold."""
    cv_dir = Path(cv_dir)
    folds = {
        int(p.name[4:]): p
        for p in cv_dir.glob("fold*")
        if p.name[4:].isdigit() and (p / CONFIG_FILE).is_file()
    }
    if not folds:
        raise DataError(
            f"{cv_dir} holds no fold runs (fold1/config.json ...): is it a --cv folder?"
        )
    return dict(sorted(folds.items()))


def check_compatible(runs: dict[str, Run]) -> None:
    """Raise unless every run (keyed by where it came from) has the same interface."""
    (first_name, first), *rest = runs.items()
    expected = first.interface()
    for name, run in rest:
        differ = [k for k, v in run.interface().items() if v != expected[k]]
        if differ:
            raise DataError(
                f"{name} and {first_name} differ in their {differ[0]}: "
                "only models with the same inputs and outputs can be averaged"
            )


# -- the MLP's file ----------------------------------------------------------------------------


def save_pipeline(pipeline, path: str | os.PathLike) -> None:
    """Save a scikit-learn pipeline as skops (a format that cannot execute code on load)."""
    import skops.io

    skops.io.dump(pipeline, path)


def load_pipeline(path: str | os.PathLike):
    """Load :func:`save_pipeline`'s file, refusing any type outside the expected ones."""
    import skops.io

    untrusted = set(skops.io.get_untrusted_types(file=path)) - set(SKOPS_TRUSTED)
    if untrusted:
        raise DataError(f"{path} holds types ser_cnn does not load: {sorted(untrusted)}")
    return skops.io.load(path, trusted=list(SKOPS_TRUSTED))


# -- older formats -----------------------------------------------------------------------------


def _upgrade_format_1(d: dict) -> dict:
    """Format 1 (config.json written as a plain dict by train.py) -> format 2, in memory."""
    d = dict(d)
    if d["model"] == "cnn":
        arch_keys = {f.name for f in dataclasses.fields(CNNConfig)}
        old = d["training"]
        training = {k: v for k, v in old.items() if k not in arch_keys}
        training["architecture"] = {k: v for k, v in old.items() if k in arch_keys}
        # the single record of speaker normalisation; format 1 also had input.speaker_normalized
        training["speaker_norm"] = bool(
            old.get("speaker_norm", d.get("input", {}).get("speaker_normalized", False))
        )
        training.setdefault("seed", d.get("seed", 0))
        norm = d["normalization"]
        d["normalization"] = {
            "band_mean": norm["band_mean"],
            "band_std": norm["band_std"],
            "fitted_on": norm.get("from", "train actors"),
        }
        d["training"] = training
    else:
        d["training"] = {k: v for k, v in d["training"].items() if k != "best_epoch"} | {
            "seed": d.get("seed", 0)
        }
    d["split"] = d["split"] if "kind" in d["split"] else {"kind": "actor-wise", **d["split"]}
    d.setdefault("clips", {})
    d["format"] = RUN_FORMAT
    return d


def migrate(run_dir: str | os.PathLike) -> bool:
    """Rewrite a format-1 run folder as format 2 on disk (once); True when it changed.

    The old MLP file is a joblib pickle, which can run code when loaded: migrate only run
    folders you trust (your own). It becomes ``model.skops``; ``normalization.json`` (a copy of
    what config.json holds) goes.
    """
    run_dir = Path(run_dir)
    d = json.loads((run_dir / CONFIG_FILE).read_text())
    if d.get("format") == RUN_FORMAT:
        return False
    run = Run.from_dict(d)
    old_model = run_dir / "model.joblib"
    if run.model == "mlp" and old_model.exists():
        import joblib

        save_pipeline(joblib.load(old_model)["pipeline"], run_dir / MODEL_FILES["mlp"])
        old_model.unlink()
    (run_dir / "normalization.json").unlink(missing_ok=True)
    metrics = load_metrics(run_dir)
    if run.model == "mlp" and "best_epoch" not in metrics:
        metrics["best_epoch"] = d["training"].get("best_epoch")
        save_metrics(run_dir, metrics)
    run.save(run_dir)
    return True


def _features_to_dict(model: str, features) -> dict:
    """A run's feature settings as stored; Whisper's log-mel with its kind (the CNN's and the
    MLP's are told apart by the run's model, as they always were)."""
    if model == "encoder":
        return {"kind": features.kind, **features.to_dict()}
    return features.to_dict()


def _features_from_dict(model: str, d: dict):
    """:func:`_features_to_dict` read back: the settings of the run's model's kind."""
    config = FEATURE_CONFIGS[model]
    d = dict(d)
    kind = d.pop("kind", config.kind)
    if kind != config.kind:
        raise DataError(f"a {model} run's features are {config.kind!r}, got {kind!r}")
    return config.from_dict(d)


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


if __name__ == "__main__":  # python -m ser_cnn.run RUN_DIR...: migrate trusted old run folders
    for arg in sys.argv[1:]:
        for kind, folder in model_folders(arg).items():
            print(f"{folder}: {'migrated' if migrate(folder) else 'already current'} ({kind})")
