"""Splits of any labelled cache: the labels a model learns, and speaker-grouped folds.

RAVDESS alone keeps its six published folds (:func:`ser_cnn.ravdess.split`, actor numbers);
every other data set, or RAVDESS mixed with others, is split here by the same rules:

* **Labels** (:func:`labels_in`): the data's own emotions, the project's first in
  :data:`~ser_cnn.ravdess.EMOTIONS` order, then the others (``frustrated``) alphabetically;
  RAVDESS alone has all eight, in that order, as it always had. A clip without an emotion (a
  corpus label with no project emotion) is refused: a model cannot learn an unnamed class.
* **Folds** (:func:`data_folds`): ``k`` folds of speakers (``corpus/speaker``, so two corpora's
  speaker "1" are two people); every speaker is tested in exactly one fold. Speakers are dealt
  out largest first, each to the fold whose emotions (and genders, where known) it balances
  best, ties to the fold with fewest speakers, then the first: no random seed involved.
* **Validation speakers** of fold ``f`` come out of its training speakers, as RAVDESS's do:
  about one in :data:`VAL_SHARE` (at least one), met while walking through the test speakers of
  folds f+1, f+2, … (each fold's in sorted order), shared out over the genders (where known)
  in proportion, each known gender getting one where there are enough. The rest train.
* **Without speakers**, each clip is its own group, so the same rules make stratified clip
  folds (validation clips shared out over the emotions) and the split is ``clip-wise``: a
  speaker's clips may then be on both sides, and the estimate is optimistic (:data:`OPTIMISTIC`
  is printed and stored with the run and its results). Clips without a speaker among clips with
  one are grouped alone the same way, with the same warning.

Refused with a :class:`~ser_cnn.errors.DataError` that says what to change, before anything is
written: clips without an emotion, a single emotion, a single speaker, fewer speakers (or
clips) than folds need, an emotion with fewer clips than folds or (speakers known) of one
speaker only, a fold that would leave no training or validation speaker or no training clip
of an emotion. An emotion with fewer speakers than folds is not tested in every fold: the
split's ``note`` names those folds (their UAR and macro-F1 average the emotions they test).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from ser_cnn.errors import DataError, ParameterError
from ser_cnn.ravdess import EMOTIONS

RAVDESS = "ravdess"
RAVDESS_FOLDS = 6  # the published folds (ser_cnn/ravdess_folds.json)
DEFAULT_FOLDS = 5
VAL_SHARE = 10  # about one training speaker in this many validates
MIN_GROUPS = 3  # a test, a validation and a training speaker
PARTS = ("train", "val", "test")
SHOWN = 5
OPTIMISTIC = (
    "speakers unknown: a speaker's clips may be in training and test data alike, so these "
    "scores are optimistic (they measure voices the model has heard, not new ones); give each "
    "clip a speaker (a `speaker` column) for a speaker-independent estimate"
)


def is_ravdess(manifest: pd.DataFrame) -> bool:
    """Whether every clip of a cache's manifest is a RAVDESS clip (old caches: all are)."""
    return "corpus" not in manifest.columns or bool(
        (manifest["corpus"].fillna(RAVDESS) == RAVDESS).all()
    )


def labels_in(manifest: pd.DataFrame) -> tuple[str, ...]:
    """The classes a model of this data learns, in output order (see the module's docstring).

    Raises
    ------
    DataError
        Clips without an emotion (named by corpus and label), or no clips.
    """
    if manifest.empty:
        raise DataError("no clips to learn from")
    if is_ravdess(manifest):
        return EMOTIONS
    missing = manifest["emotion"].isna()
    if missing.any():
        labels = manifest.loc[missing, "label"] if "label" in manifest.columns else None
        counts = Counter(
            f"{c} {lab!r}"
            for c, lab in zip(
                manifest.loc[missing, "corpus"],
                labels if labels is not None else [None] * int(missing.sum()),
                strict=True,
            )
        )
        listed = ", ".join(f"{k} ({n})" for k, n in sorted(counts.items())[:SHOWN])
        raise DataError(
            f"{int(missing.sum())} clip(s) have no emotion ({listed}): their corpus label maps "
            "to no project emotion, and a model cannot learn an unnamed class; name their "
            "emotion in a table (`path,emotion,speaker`) or leave them out"
        )
    present = set(manifest["emotion"])
    return tuple(e for e in EMOTIONS if e in present) + tuple(sorted(present - set(EMOTIONS)))


def label_indices(manifest: pd.DataFrame, labels: tuple[str, ...]) -> np.ndarray:
    """Each clip's class index into ``labels`` (for RAVDESS and :data:`EMOTIONS`, exactly
    :func:`ser_cnn.ravdess.labels_of`); raises DataError for an emotion ``labels`` lacks."""
    index = {e: i for i, e in enumerate(labels)}
    unknown = sorted(set(manifest["emotion"].dropna()) - set(index))
    if unknown or manifest["emotion"].isna().any():
        raise DataError(
            f"clips labelled {unknown or ['(none)']} are not among the classes {list(labels)}"
        )
    return manifest["emotion"].map(index).to_numpy(dtype=np.int64)


def groups_of(manifest: pd.DataFrame) -> np.ndarray:
    """Each clip's group: its speaker as ``corpus/speaker``, or, without one, the clip itself
    (its cache key, the ``stem`` column: it never holds a ``/``)."""
    speakers = manifest["speaker"] if "speaker" in manifest.columns else None
    out = []
    for i, (stem, corpus) in enumerate(zip(manifest["stem"], manifest["corpus"], strict=True)):
        speaker = None if speakers is None else speakers.iloc[i]
        known = isinstance(speaker, str) and speaker != ""
        out.append(f"{corpus}/{speaker}" if known else str(stem))
    return np.array(out, dtype=object)


@dataclass(frozen=True)
class DataSplit:
    """Groups of each part of one fold: speakers (``corpus/speaker``) or, where speakers are
    unknown, clips (cache keys). No group is in two parts."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    fold: int | None = None
    folds: int | None = None
    kind: str = "speaker-wise"  # or "clip-wise": some or all speakers unknown
    note: str | None = None  # the warning of a clip-wise split

    KINDS: ClassVar[tuple[str, ...]] = ("speaker-wise", "clip-wise")

    def __post_init__(self) -> None:
        for name in PARTS:
            object.__setattr__(self, name, tuple(str(g) for g in getattr(self, name)))
        if self.kind not in self.KINDS:
            raise ParameterError(f"split kind must be one of {self.KINDS}, got {self.kind!r}")
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = set(getattr(self, a)) & set(getattr(self, b))
            if shared:
                raise ParameterError(f"{sorted(shared)[:SHOWN]} are in both {a} and {b}")
        if not self.train or not self.test:
            raise ParameterError("a split needs at least one training and one test group")

    def masks(self, manifest: pd.DataFrame) -> dict[str, np.ndarray]:
        """Boolean masks of the manifest rows of each part."""
        groups = groups_of(manifest)
        return {name: np.isin(groups, getattr(self, name)) for name in PARTS}

    def speakers(self, manifest: pd.DataFrame) -> np.ndarray:
        """Each row's speaker (its group), e.g. for babble from other speakers only."""
        return groups_of(manifest)

    def record(self) -> dict:
        """What a run's ``config.json`` stores as its ``split``."""
        return {
            "kind": self.kind,
            "fold": self.fold,
            "folds": self.folds,
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
            "note": self.note,
        }

    def describe(self) -> str:
        what = "speakers" if self.kind == "speaker-wise" else "groups (speakers, or clips)"
        return (
            f"fold {self.fold} of {self.folds}, {what}: train {len(self.train)}, "
            f"validation {len(self.val)} ({_some(self.val)}), test {len(self.test)} "
            f"({_some(self.test)})"
        )

    @classmethod
    def from_record(cls, d: dict) -> DataSplit:
        return cls(
            **{k: d.get(k) for k in ("train", "val", "test", "fold", "folds", "kind", "note")}
        )


def data_folds(manifest: pd.DataFrame, folds: int = DEFAULT_FOLDS) -> list[DataSplit]:
    """Every fold of a cache's manifest (columns ``stem``, ``emotion``, ``speaker``,
    ``corpus``, ``gender``), fold 1 first; see the module's docstring.

    Raises
    ------
    DataError
        See the module's docstring.
    """
    if not isinstance(folds, int) or folds < 2:
        raise ParameterError(f"folds must be 2 or more, got {folds!r}")
    labels = labels_in(manifest)
    if len(labels) < 2:
        raise DataError(
            f"every clip is labelled {labels[0]!r}: a model needs at least two emotions to tell "
            "apart"
        )
    groups = groups_of(manifest)
    has_speaker = np.array(["/" in g for g in groups])
    speakers = set(groups[has_speaker])
    if has_speaker.all() and len(speakers) == 1:
        raise DataError(
            f"all {len(manifest)} clips are of one speaker ({groups[0]}): speaker-independent "
            f"folds need at least {max(MIN_GROUPS, folds)} speakers; give clips of more "
            "speakers, or leave out the speaker column for an optimistic clip-wise estimate"
        )
    unit = "speakers" if has_speaker.all() else "speakers or clips without one"
    frame = pd.DataFrame(
        {"group": groups, "emotion": manifest["emotion"].to_numpy(), "gender": _genders(manifest)}
    )
    n_groups = frame["group"].nunique()
    if n_groups < max(MIN_GROUPS, folds):
        fewer = f"; use --folds {n_groups}" if n_groups >= MIN_GROUPS else ""
        raise DataError(
            f"{n_groups} {unit} cannot make {folds} folds: every fold tests other ones, and "
            f"each needs a test, a validation and a training one (at least "
            f"{max(MIN_GROUPS, folds)}){fewer}"
        )
    clips = frame["emotion"].value_counts()
    few = {e: int(clips[e]) for e in labels if clips[e] < folds}
    if few:
        listed = ", ".join(f"{e!r} has {n} clip(s)" for e, n in few.items())
        raise DataError(
            f"{listed}: {folds} folds need at least {folds} clips of every emotion; "
            + (f"use --folds {min(few.values())}, " if min(few.values()) >= 2 else "")
            + "give more clips of it, or leave it out"
        )
    per_label = frame.groupby("emotion")["group"].nunique()
    alone = [e for e in labels if per_label[e] < 2]
    if alone and has_speaker.all():
        raise DataError(
            f"{', '.join(map(repr, alone))}: the clips of one speaker only; a speaker-independent "
            "model can learn an emotion only from other speakers than those it is tested on: "
            "give clips of it by two speakers or more, or leave it out"
        )
    fold_of = _deal(frame, labels, folds)
    members = [sorted(g for g, f in fold_of.items() if f == k) for k in range(folds)]
    # validation speakers are shared out over the genders, clips without one over the emotions
    first = frame.groupby("group").first()
    strata = {
        g: gender if "/" in g else emotion
        for g, gender, emotion in zip(first.index, first["gender"], first["emotion"], strict=True)
    }
    emotions = {g: set(e) for g, e in frame.groupby("group")["emotion"]}
    note = None if has_speaker.all() else _note(int((~has_speaker).sum()), len(manifest))
    tested = [set(frame.loc[frame["group"].isin(m), "emotion"]) for m in members]
    untested = {e: [k + 1 for k in range(folds) if e not in tested[k]] for e in labels}
    untested = {e: ks for e, ks in untested.items() if ks}
    if untested:  # fewer speakers of an emotion than folds: some folds cannot test it
        gaps = "; ".join(
            f"{e!r} ({per_label[e]} {'speakers' if has_speaker.all() else 'groups'}) is not "
            f"tested in fold {', '.join(map(str, ks))}"
            for e, ks in untested.items()
        )
        gap_note = f"{gaps}: those folds' UAR and macro-F1 average the emotions they test"
        note = gap_note if note is None else f"{note}; {gap_note}"
    out = []
    for k in range(folds):
        test = members[k]
        walk = [g for j in range(1, folds) for g in members[(k + j) % folds]]
        val = _validation(walk, strata, emotions)
        train = sorted(set(walk) - set(val))
        if not train or not val:
            raise DataError(
                f"fold {k + 1} tests {len(test)} of the {n_groups} {unit}, which leaves too few "
                "for training and validation; use fewer --folds"
            )
        trained = set(frame.loc[frame["group"].isin(train), "emotion"])
        lacking = [e for e in labels if e not in trained]
        if lacking:
            raise DataError(
                f"fold {k + 1} would have no training clip of {lacking}: give more speakers of "
                "it, or use fewer --folds"
            )
        kind = "speaker-wise" if has_speaker.all() else "clip-wise"
        out.append(DataSplit(train, tuple(sorted(val)), test, k + 1, folds, kind, note))
    return out


def data_split(manifest: pd.DataFrame, fold: int = 1, folds: int = DEFAULT_FOLDS) -> DataSplit:
    """Fold ``fold`` (1..folds) of :func:`data_folds`."""
    if not isinstance(fold, int) or not 1 <= fold <= folds:
        raise ParameterError(f"fold must be 1..{folds} (--folds {folds}), got {fold}")
    return data_folds(manifest, folds)[fold - 1]


def check_ravdess_fold(fold: int | None, folds: int | None) -> None:
    """RAVDESS alone has its six published folds: refuse another count or fold number."""
    if folds not in (None, RAVDESS_FOLDS):
        raise ParameterError(
            f"RAVDESS alone is split into its {RAVDESS_FOLDS} published folds; leave out "
            f"--folds (got {folds})"
        )
    if fold is not None and not 1 <= fold <= RAVDESS_FOLDS:
        raise ParameterError(f"RAVDESS has folds 1..{RAVDESS_FOLDS}, got {fold}")


# ---------------------------------------------------------------------------------------------


def _genders(manifest: pd.DataFrame) -> list[str]:
    """Each clip's gender as written, ``"?"`` where unknown."""
    if "gender" not in manifest.columns:
        return ["?"] * len(manifest)
    return [g if isinstance(g, str) and g else "?" for g in manifest["gender"]]


def _deal(frame: pd.DataFrame, labels: tuple[str, ...], folds: int) -> dict[str, int]:
    """Deal the groups out to folds, largest first, each where it balances the folds' clips
    per emotion (and per known gender) best: the fold holding the least of what the group
    brings, as shares of the whole (a fold with no group first; ties: fewest groups, first)."""
    columns = list(labels) + sorted(set(frame["gender"]) - {"?"})
    counts = pd.concat(
        [
            pd.crosstab(frame["group"], frame["emotion"]),
            pd.crosstab(frame["group"], frame["gender"]),
        ],
        axis=1,
    ).reindex(columns=columns, fill_value=0)
    totals = counts.sum(axis=0).to_numpy(dtype=np.float64)
    share = counts.to_numpy(dtype=np.float64) / np.where(totals > 0, totals, 1.0)
    size = frame.groupby("group").size().reindex(counts.index).to_numpy()
    order = sorted(range(len(counts)), key=lambda i: (-int(size[i]), counts.index[i]))
    load = np.zeros((folds, len(columns)))
    n = np.zeros(folds, dtype=int)
    fold_of = {}
    for i in order:
        empty = [f for f in range(folds) if n[f] == 0]
        candidates = empty or range(folds)
        # adding share s to fold f raises the spread of the folds' shares by 2 load[f]·s + s·s:
        # the fold with the least of what the group brings
        best = min(candidates, key=lambda f: (round(float(load[f] @ share[i]), 12), n[f], f))
        load[best] += share[i]
        n[best] += 1
        fold_of[counts.index[i]] = best
    return fold_of


def _validation(walk: list[str], strata: dict[str, str], emotions: dict[str, set]) -> list[str]:
    """About one in :data:`VAL_SHARE` of ``walk`` (at least one), shared out over the strata
    (genders, or a clip's emotion) in proportion to their groups there, each getting one where
    there are enough (largest remainders, then stratum order). The strata take turns; each
    takes the first group met that brings the most emotions validation lacks so far (with
    every emotion in every group, as in RAVDESS: simply the first met)."""
    n_val = max(1, round(len(walk) / VAL_SHARE))
    by: dict[str, list[str]] = {}
    for g in walk:
        by.setdefault(strata[g], []).append(g)
    names = sorted(by)
    quota = dict.fromkeys(names, 1 if n_val >= len(names) else 0)
    left = n_val - sum(quota.values())
    if left > 0:
        exact = {s: left * len(by[s]) / len(walk) for s in names}
        for s in names:
            quota[s] += math.floor(exact[s])
        rest = n_val - sum(quota.values())
        for s in sorted(names, key=lambda s: (-(exact[s] - math.floor(exact[s])), s))[:rest]:
            quota[s] += 1
    for s in names:  # never all of the groups: some must train
        quota[s] = min(quota[s], len(by[s]) - (1 if len(by) == 1 else 0))
    chosen: list[str] = []
    covered: set = set()
    while any(quota.values()):
        for s in names:
            if not quota[s]:
                continue
            left_over = [g for g in by[s] if g not in chosen]
            pick = max(left_over, key=lambda g: (len(emotions[g] - covered), -walk.index(g)))
            chosen.append(pick)
            covered |= emotions[pick]
            quota[s] -= 1
    return chosen


def _note(unknown: int, total: int) -> str:
    if unknown == total:
        return OPTIMISTIC
    return (
        f"{unknown} of {total} clips have no speaker and are split clip by clip: their "
        "speakers may be in training and test data alike, so these scores are optimistic; "
        "give every clip a speaker for a speaker-independent estimate"
    )


def _some(groups: tuple[str, ...]) -> str:
    shown = ", ".join(groups[:SHOWN])
    return shown + (f" and {len(groups) - SHOWN} more" if len(groups) > SHOWN else "")
