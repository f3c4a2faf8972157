"""Library versions and the git commit, recorded beside every cache and model."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "ser_cnn",
    "numpy",
    "soundfile",
    "soxr",
    "librosa",
    "pandas",
    "scikit-learn",
    "tensorflow",
    "keras",
    "skops",
    "ai-edge-litert",  # LiteRT: the CNN's light runtime (ser_cnn.serving.runtime)
)


def library_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions by distribution name (None when not installed), read without importing."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    try:
        import soundfile

        found["libsndfile"] = soundfile.__libsndfile_version__
    except (ImportError, AttributeError):  # pragma: no cover - soundfile is a dependency
        found["libsndfile"] = None
    return found


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit checked out at ``path`` (the package's folder by default), or None."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
