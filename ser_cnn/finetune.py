"""Fine-tuning: start the CNN from a trained run instead of from random weights.

``ser-cnn train --data mine.csv --from RUN`` (:func:`ser_cnn.train.train_cnn` with ``source``)
builds the network the run describes (its stored architecture and band statistics), loads its
weights from the run's ``model.keras`` and copies every layer's into the new network:

* the **output layer** too when the new labels are the run's (in the run's order);
* otherwise a **new output layer** for the new labels (four emotions, or ``frustrated``):
  each label the run knows keeps that label's weights (its column of the kernel and its bias),
  so a subset of the run's emotions starts where the run was; a label it does not know starts
  as a fresh layer's;
* the **input normalisation** (the per-band statistics inside the model) stays the run's: the
  weights learned on inputs standardised with them. So the features must be the run's feature
  settings: ``ser-cnn train --data`` makes the cache with them, and another cache is refused.

Training then runs as from scratch (the same recipe, splits and selection on validation
speakers) but with ``TrainConfig.finetune_learning_rate`` as its peak learning rate. The new
run records where it came from (``"from"`` in its ``config.json``: path, labels, split, seed and
git commit of the source, and what was kept). A source run trained with speaker normalisation
is refused (its inputs need each speaker's statistics), as are MLP runs (the MLP trains from
scratch in seconds) and, for now, runs of other models (the Whisper encoder's head).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_cnn.config import TrainConfig
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.model import OUTPUT_NAME, CNNConfig
from ser_cnn.run import Run, load_run, model_folders

KERAS_FILE = "model.keras"


@dataclass(frozen=True)
class Source:
    """A CNN run to fine-tune from: its folder and its :class:`~ser_cnn.run.Run`."""

    run_dir: Path
    run: Run

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

    def order(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        """The source's label order when the labels are the same set (its output layer is
        kept whole), else ``labels`` as given."""
        return self.run.labels if set(labels) == set(self.run.labels) else tuple(labels)

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
        kernel, bias = old.get_layer(OUTPUT_NAME).get_weights()
        out = model.get_layer(OUTPUT_NAME)
        new_kernel, new_bias = (np.array(w) for w in out.get_weights())  # fresh initialisation
        known = [lab for lab in labels if lab in run.labels]
        for j, label in enumerate(labels):
            if label in run.labels:
                i = run.labels.index(label)
                new_kernel[:, j], new_bias[j] = kernel[:, i], bias[i]
        out.set_weights([new_kernel, new_bias])
        return {
            "layers": layers,
            "output": "kept" if tuple(labels) == run.labels else "new",
            "output_rows_kept": known,
            "output_rows_new": [lab for lab in labels if lab not in run.labels],
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


def load_source(path: str | os.PathLike) -> Source:
    """The CNN run at ``path``: a CNN run folder, or a folder with ``cnn/`` (the shipped
    ``checkpoints/ravdess_fold1``).

    Raises
    ------
    DataError
        No run folder, no CNN in it (an MLP cannot be fine-tuned), no ``model.keras``, or a
        speaker-normalised run.
    """
    folders = model_folders(path)
    if "cnn" not in folders:
        held = (
            f" (only {' and '.join(folders)}: the CNN is what is fine-tuned; the MLP "
            "trains from scratch in seconds)"
            if folders
            else ""
        )
        raise DataError(f"{path}: no CNN run to fine-tune from{held}")
    run_dir = folders["cnn"].resolve()  # recorded in the new run: where it came from
    run = load_run(run_dir)
    if not (run_dir / KERAS_FILE).is_file():
        raise DataError(f"{run_dir} has no {KERAS_FILE}, the Keras model fine-tuning starts from")
    if run.speaker_normalized:
        raise DataError(
            f"{run_dir} was trained on speaker-normalised log-mels: fine-tuning from such a run "
            "is not offered"
        )
    return Source(run_dir, run)


def _speakers(split: dict, part: str) -> set[str]:
    """A split record's speakers of ``part`` as ``corpus/speaker`` (RAVDESS actor numbers as
    ``ravdess/N``, as :func:`ser_cnn.splits.groups_of` names them)."""
    values = split.get(part) or ()
    if split.get("kind") == "actor-wise":
        return {f"ravdess/{a}" for a in values}
    return {str(v) for v in values if "/" in str(v)}
