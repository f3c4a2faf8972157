"""What an encoder run does to a clip before its log-mel: denoise, then dereverberate.

Serving: a run's recipe names its front end (``[denoise]`` and ``[dereverb]`` tables,
:class:`ser_cnn.encoder.fit.HeadTraining`). Training clips and their degraded copies pass
through it only in an encoder cache made as served (``tools/encode_cache.py --front-end``:
two trials, ``configs/encoder_logistic_gated_served*.toml``). The denoiser comes first because its
gate was chosen on clips as recorded (:mod:`ser_cnn.audio.denoise`), before any reverberation
was taken from their pauses; the dereverberation gate too reads the clip as it arrives, not as
the denoiser leaves it (whose pauses it has emptied).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_cnn.audio.denoise import DenoiseConfig, denoise, needs_denoising
from ser_cnn.audio.dereverb import DereverbConfig, dereverberate, needs_dereverberation
from ser_cnn.errors import ParameterError


@dataclass(frozen=True)
class FrontEnd:
    """The stages a clip passes through before the Whisper log-mel, each None when absent."""

    denoise: DenoiseConfig | None = None
    dereverb: DereverbConfig | None = None

    def __call__(self, y: np.ndarray, sr: int) -> np.ndarray:
        """``y`` (shape (n,), at ``sr`` Hz) through each stage; float32, the same length."""
        y = np.asarray(y, dtype=np.float32)
        reverberant = self._dereverberates(y, sr)  # on the clip as it arrives
        if self.denoise is not None:
            y = denoise(y, sr, config=self.denoise)
        if reverberant:
            y = dereverberate(y, sr, config=self.dereverb)
        return y

    def changes(self, y: np.ndarray, sr: int) -> bool:
        """Whether any stage changes ``y``: each only where its gate lets the clip in."""
        return self._dereverberates(y, sr) or (
            self.denoise is not None and needs_denoising(y, sr, config=self.denoise)
        )

    def _dereverberates(self, y: np.ndarray, sr: int) -> bool:
        return self.dereverb is not None and needs_dereverberation(y, sr, config=self.dereverb)

    @classmethod
    def from_recipe(cls, path: str | os.PathLike) -> FrontEnd:
        """The front end of a recipe TOML (a ``ser-cnn train --config`` file): its
        ``[denoise]`` and ``[dereverb]`` tables, the rest of it ignored. A recipe without either
        is an error: it names no front end."""
        try:
            tables = tomllib.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise ParameterError(
                f"front end: cannot read {path} as a recipe TOML ({err})"
            ) from None
        front_end = cls(
            denoise=DenoiseConfig.from_dict(tables["denoise"]) if "denoise" in tables else None,
            dereverb=DereverbConfig.from_dict(tables["dereverb"]) if "dereverb" in tables else None,
        )
        if front_end == cls():
            raise ParameterError(
                f"front end: {path} has neither a [denoise] nor a [dereverb] table; expected a "
                "recipe such as configs/encoder_logistic_gated_reverb_fast.toml"
            )
        return front_end

    def to_dict(self) -> dict:
        """The stages present, by name (as a recipe's tables)."""
        return {
            name: stage.to_dict()
            for name, stage in (("denoise", self.denoise), ("dereverb", self.dereverb))
            if stage is not None
        }
