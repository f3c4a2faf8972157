"""What ser_cnn answers: each model's scores for a recording, and for each window of a long one."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Scores:
    """One model's answer: the most likely emotion, its probability, and every probability."""

    emotion: str
    probability: float
    probabilities: dict[str, float]

    @classmethod
    def from_vector(cls, p: np.ndarray, labels: tuple[str, ...]) -> Scores:
        p = np.asarray(p, dtype=np.float64)
        p = p / p.sum()
        best = int(np.argmax(p))
        return cls(
            labels[best], float(p[best]), {lab: float(v) for lab, v in zip(labels, p, strict=True)}
        )

    def top(self, k: int) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    def to_dict(self) -> dict:
        return {
            "emotion": self.emotion,
            "probability": self.probability,
            "probabilities": self.probabilities,
        }


@dataclass(frozen=True)
class Window:
    """Scores of one window of a long recording; ``silent`` windows hold no speech (digital
    silence, or only the recording's room tone or noise) and have no scores."""

    start: float  # s
    end: float  # s
    scores: dict[str, Scores]
    silent: bool = False

    def to_dict(self) -> dict:
        d = {"start": round(self.start, 3), "end": round(self.end, 3), "silent": self.silent}
        d.update({name: s.to_dict() for name, s in self.scores.items()})
        return d


@dataclass(frozen=True)
class Prediction:
    """What ser_cnn hears in one recording.

    ``scores`` maps each model ('cnn', 'mlp') to its :class:`Scores`; for a long recording,
    the mean of its windows with speech, and ``windows`` lists every window.
    ``emotion`` and ``probability`` are the first model's (the CNN when it was loaded).
    """

    source: str
    duration: float  # s
    scores: dict[str, Scores]
    windows: list[Window] = field(default_factory=list)

    @property
    def emotion(self) -> str:
        return next(iter(self.scores.values())).emotion

    @property
    def probability(self) -> float:
        return next(iter(self.scores.values())).probability

    @property
    def probabilities(self) -> dict[str, float]:
        return next(iter(self.scores.values())).probabilities

    def to_dict(self) -> dict:
        d = {"file": self.source, "duration": round(self.duration, 3)}
        d.update({name: s.to_dict() for name, s in self.scores.items()})
        d["windows"] = [w.to_dict() for w in self.windows]
        return d
