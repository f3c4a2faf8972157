"""One exception family for everything ser_cnn refuses at its boundary.

Every error a user can cause (a bad file, a malformed RAVDESS name, a missing cache, a bad
option) is a :class:`SerError`, so an application can catch one class and show its message,
which always says what was found and what was expected.
"""


class SerError(Exception):
    """Base class of every error ser_cnn raises on purpose."""


class ParameterError(SerError, ValueError):
    """An argument has the wrong type, shape or value."""


class AudioError(SerError, ValueError):
    """Audio that cannot be analysed: missing, empty, not audio, truncated, too short, silent."""


class NameFormatError(SerError, ValueError):
    """A file name that does not follow the RAVDESS naming scheme."""


class DataError(SerError):
    """A dataset folder, cache or run folder that is missing or inconsistent."""
