"""Fine-tuning: start a model from a trained run instead of from random weights.

``ser-cnn train --data mine.csv --from RUN`` fine-tunes the CNN (:class:`Source`, used by
:func:`ser_cnn.training.train.train_cnn`); with ``--model encoder`` it fine-tunes the head on the
frozen Whisper encoder (:class:`HeadSource`, used by :func:`ser_cnn.encoder.train.train_encoder`).
Either way the network the run describes is built (its stored architecture and input
statistics), its weights are loaded from the run's ``model.keras`` and copied into the new
network:

* every layer but the output layer, as it is;
* the **output layer** too when the new labels are the run's (in the run's order);
* otherwise a **new output layer** for the new labels (four emotions, or ``frustrated``):
  each label the run knows keeps that label's weights (its column of the kernel and its bias),
  so a subset of the run's emotions starts where the run was; a label it does not know starts
  as a fresh layer's (:meth:`RunSource.copy_output`: one rule for both models);
* the **input normalisation** (the CNN's per-band statistics, the head's statistics of the
  pooled encoder states; both inside the model) stays the run's: the weights learned on inputs
  standardised with them. So the features must be the run's settings (for the head, the same
  encoder's states too): ``ser-cnn train --data`` makes the cache with them, and another cache
  is refused.

Training then runs as from scratch (the same recipe, splits and selection on validation
speakers); the CNN with ``TrainConfig.finetune_learning_rate`` as its peak learning rate, the
head with its recipe's (the source run's own unless ``--config`` says otherwise). The new run
records where it came from (``"from"`` in its ``config.json``: path, labels, split, seed and git
commit of the source, and what was kept). A CNN run trained with speaker normalisation is
refused (its inputs need each speaker's statistics), as are MLP runs (the MLP trains from
scratch in seconds).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_cnn.config import TrainConfig
from ser_cnn.encoder.head import OUTPUT_LAYER as HEAD_OUTPUT
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.model import OUTPUT_NAME, CNNConfig
from ser_cnn.run import Run, load_run, model_folders

KERAS_FILE = "model.keras"
NAMES = {"cnn": "CNN", "encoder": "encoder"}  # the models fine-tuning starts from


@dataclass(frozen=True)
class RunSource:
    """A run to fine-tune from, its folder and its :class:`~ser_cnn.run.Run`: what fine-tuning
    any model shares (the label order, the output layer's rows, warnings, the record)."""

    run_dir: Path
    run: Run

    def order(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        """The source's label order when the labels are the same set (its output layer is
        kept whole), else ``labels`` as given."""
        return self.run.labels if set(labels) == set(self.run.labels) else tuple(labels)

    def copy_output(self, old_layer, new_layer, labels: tuple[str, ...]) -> dict:
        """Give ``new_layer`` (a freshly initialised dense output layer for ``labels``) the
        kernel column and bias of ``old_layer`` (the source's output layer) for every label
        the source knows; return what was kept."""
        kernel, bias = old_layer.get_weights()
        new_kernel, new_bias = (np.array(w) for w in new_layer.get_weights())
        for j, label in enumerate(labels):
            if label in self.run.labels:
                i = self.run.labels.index(label)
                new_kernel[:, j], new_bias[j] = kernel[:, i], bias[i]
        new_layer.set_weights([new_kernel, new_bias])
        return {
            "output": "kept" if tuple(labels) == self.run.labels else "new",
            "output_rows_kept": [lab for lab in labels if lab in self.run.labels],
            "output_rows_new": [lab for lab in labels if lab not in self.run.labels],
        }

    def warnings(self, split) -> list[str]:
        """A warning when the source trained or validated on speakers this split tests (the
        same corpus, other folds): its scores would not be of unheard voices."""
        heard = _speakers(self.run.split, "train") | _speakers(self.run.split, "val")
        tested = _speakers(split.record(), "test")
        both = sorted(heard & tested)
        if not both:
            return []
        return [
            f"the run fine-tuned from ({self.run_dir}) was trained on {len(both)} of the test "
            f"speakers ({', '.join(both[:5])}{' ...' if len(both) > 5 else ''}): these scores "
            "are not of voices it never heard"
        ]

    def record(self, kept: dict) -> dict:
        """The new run's ``"from"``: where it came from, and what was kept."""
        run = self.run
        return {
            "path": str(self.run_dir),
            "model": run.model,
            "labels": list(run.labels),
            "split": {k: run.split.get(k) for k in ("kind", "fold", "test")},
            "corpora": list((run.data or {}).get("corpora") or ["ravdess"]),
            "seed": run.seed,
            "git_commit": run.git_commit,
            "kept": kept,
        }


class Source(RunSource):
    """A CNN run to fine-tune from."""

    def check(self, feature_config, config: TrainConfig, cache_dir: str | os.PathLike) -> None:
        """Refuse a cache of other feature settings, or a config with another architecture."""
        if feature_config != self.run.features:
            raise DataError(
                f"the cache {cache_dir} was made with other feature settings than {self.run_dir}; "
                "fine-tuning needs the run's (`ser-cnn train --data PATH --from RUN` makes the "
                "cache with them)"
            )
        arch = config.architecture
        if arch != self.run.architecture and arch != CNNConfig():
            raise ParameterError(
                f"a fine-tuned CNN has the architecture of the run it starts from "
                f"({self.run_dir}); leave [architecture] out of the config file"
            )
        if config.speaker_norm:
            raise ParameterError("fine-tuning with speaker_norm is not offered")

    def config_for(self, config: TrainConfig) -> TrainConfig:
        """``config`` with the source's architecture."""
        return config.replace(architecture=self.run.architecture.to_dict())

    def band_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        norm = self.run.normalization
        return np.asarray(norm.band_mean), np.asarray(norm.band_std)

    def normalization_note(self) -> str:
        return (
            f"{self.run.normalization.fitted_on} of {self.run_dir} (kept: the run fine-tuned from)"
        )

    def transfer(self, model, labels: tuple[str, ...]) -> dict:
        """Copy the source's weights into ``model`` (built for ``labels`` with the source's
        architecture); return what was kept (:meth:`record` stores it)."""
        from ser_cnn.model import build_cnn

        run = self.run
        mean, std = self.band_statistics()
        old = build_cnn(
            run.features.shape, len(run.labels), run.architecture, band_mean=mean, band_std=std
        )
        try:
            old.load_weights(self.run_dir / KERAS_FILE)  # weights only: no code is loaded
        except (ValueError, KeyError, OSError) as err:
            raise DataError(
                f"{self.run_dir / KERAS_FILE} does not hold the weights its config.json "
                f"describes: {err}"
            ) from None
        layers = []
        for layer in model.layers:
            if not layer.weights or layer.name == OUTPUT_NAME:
                continue
            layer.set_weights(old.get_layer(layer.name).get_weights())
            layers.append(layer.name)
        output = self.copy_output(old.get_layer(OUTPUT_NAME), model.get_layer(OUTPUT_NAME), labels)
        return {"layers": layers, **output}


class HeadSource(RunSource):
    """An encoder run to fine-tune the head of: the frozen encoder stays, the head is copied."""

    def check(self, settings: dict, config, cache_dir: str | os.PathLike) -> None:
        """Refuse an encoder cache of other feature settings or another encoder, or a config
        with another head architecture."""
        from ser_cnn.encoder.head import HeadConfig
        from ser_cnn.encoder.train import same_cache

        if not same_cache(self.run, settings):
            raise DataError(
                f"the encoder cache {cache_dir} was made with other feature settings or another "
                f"encoder than {self.run_dir}; fine-tuning needs the run's (`ser-cnn train "
                "--model encoder --data PATH --from RUN` makes the cache with them)"
            )
        if config.head not in (self.run.training.head, self.config_for(config).head, HeadConfig()):
            raise ParameterError(
                f"a fine-tuned head has the architecture of the run it starts from "
                f"({self.run_dir}); leave [head] out of the config file"
            )

    def config_for(self, config):
        """``config`` (a :class:`~ser_cnn.encoder.fit.HeadTraining`) with the source's head,
        trained by gradient steps from the source's weights: a logistic fit starts from
        nothing, so it would forget what the source knows. A noise gate is left behind (its
        expert and gate were fitted on RAVDESS's always-noisy copies): the usual output layer
        goes on. So is a home gate: its wide output layer (every corpus's) goes on, with the
        logits it serves (``wide_temperature`` folded in: a softer start, the same order).
        The source's serving front end (``denoise``, ``dereverb``) goes on too: the new run
        hears as it did."""
        head = dataclasses.replace(self.run.training.head, noise_gate=False, home_gate=False)
        usual = config.copies - config.noisy_copies  # the usual copies go on, the noisy stay
        return dataclasses.replace(
            config,
            head=head,
            fit="gradient",
            copies=usual,
            noisy_copies=0,
            home_corpus="",
            wide_temperature=1.0,
            denoise=self.run.training.denoise,
            dereverb=self.run.training.dereverb,
        )

    def keras_head(self):
        from ser_cnn.encoder.serve import load_keras_head

        return load_keras_head(self.run_dir / KERAS_FILE)  # safe mode: no code is loaded

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """The mean and std the source head standardises its input with."""
        from ser_cnn.encoder.serve import head_statistics

        return head_statistics(self.keras_head())

    def transfer(self, model, labels: tuple[str, ...]) -> dict:
        """Copy the source head's weights into ``model`` (a head of
        :func:`~ser_cnn.encoder.head.build_head` for ``labels``, with the source's
        architecture and statistics): its layers in order, the output row by row."""
        from ser_cnn.encoder.head import WIDE_LAYER
        from ser_cnn.encoder.serve import GATE_ARRAYS

        old = self.keras_head()
        mine = [la for la in model.layers if la.weights and la.name != HEAD_OUTPUT]
        theirs = [
            la
            for la in old.layers
            if la.weights and la.name != HEAD_OUTPUT and la.name not in GATE_ARRAYS
        ]
        shapes = [[w.shape for w in la.get_weights()] for la in mine]
        if shapes != [[w.shape for w in la.get_weights()] for la in theirs]:
            raise DataError(
                f"{self.run_dir / KERAS_FILE} does not hold the head its config.json describes"
            )
        for new, layer in zip(mine, theirs, strict=True):  # built alike: the same order
            new.set_weights(layer.get_weights())
        # a home gate's wide output layer knows every corpus, the usual one only the home one
        source = WIDE_LAYER if self.run.training.head.home_gate else HEAD_OUTPUT
        output = self.copy_output(
            old.get_layer(source), model.get_layer(HEAD_OUTPUT), tuple(labels)
        )
        return {"layers": [la.name for la in theirs], "statistics": "the run's", **output}


def load_source(path: str | os.PathLike, model: str = "cnn") -> Source | HeadSource:
    """The ``model`` run at ``path`` ("cnn" or "encoder"): that model's run folder, or a folder
    with ``cnn/`` or ``encoder/`` (the shipped ``checkpoints/ravdess_fold1``).

    Raises
    ------
    DataError
        No run folder, no such model in it (an MLP cannot be fine-tuned), no ``model.keras``,
        or a speaker-normalised CNN.
    """
    if model not in NAMES:
        raise ParameterError(f"the CNN and the encoder's head are fine-tuned, not {model!r}")
    folders = model_folders(path)
    if model not in folders:
        held = ""
        if folders:
            other = [m for m in NAMES if m in folders and m != model]
            hint = (
                f"fine-tune its {NAMES[other[0]]} with --model {other[0]}"
                if other
                else "the MLP trains from scratch in seconds"
            )
            held = f" (only {' and '.join(folders)}: {hint})"
        raise DataError(f"{path}: no {NAMES[model]} run to fine-tune from{held}")
    run_dir = folders[model].resolve()  # recorded in the new run: where it came from
    run = load_run(run_dir)
    if not (run_dir / KERAS_FILE).is_file():
        raise DataError(f"{run_dir} has no {KERAS_FILE}, the Keras model fine-tuning starts from")
    if run.speaker_normalized:
        raise DataError(
            f"{run_dir} was trained on speaker-normalised log-mels: fine-tuning from such a run "
            "is not offered"
        )
    return Source(run_dir, run) if model == "cnn" else HeadSource(run_dir, run)


def _speakers(split: dict, part: str) -> set[str]:
    """A split record's speakers of ``part`` as ``corpus/speaker`` (RAVDESS actor numbers as
    ``ravdess/N``, as :func:`ser_cnn.corpora.splits.groups_of` names them)."""
    values = split.get(part) or ()
    if split.get("kind") == "actor-wise":
        return {f"ravdess/{a}" for a in values}
    return {str(v) for v in values if "/" in str(v)}
