"""What a recipe's table of settings becomes: a frozen dataclass with this mixin."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ser_cnn.errors import ParameterError


class Settings:
    """``to_dict`` and a ``from_dict`` that refuses unknown settings by name, for a frozen
    dataclass whose ``TABLE`` names it in messages (a recipe's ``[TABLE]``)."""

    TABLE: ClassVar[str]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        if set(d) - names:
            raise ParameterError(
                f"unknown {cls.TABLE} settings {sorted(set(d) - names)}; known: {sorted(names)}"
            )
        return cls(**d)
