"""ser_cnn: speech emotion recognition on RAVDESS: a head on a frozen Whisper encoder, a log-mel
CNN and an MLP baseline.

Importing the package is cheap: TensorFlow is imported only by the modules that need it
(training and inference), never here.
"""

from ser_cnn.errors import AudioError, DataError, NameFormatError, ParameterError, SerError
from ser_cnn.ravdess import EMOTIONS

__version__ = "0.1.0"


def load_recognizer(run_dir=None, *, models=None, calibrated=True, runtime="auto"):
    """Load the shipped model (default) or a run folder: see
    :class:`ser_cnn.serving.inference.Recognizer`.

    ``models=None`` loads every model the folder has: for the shipped one the Whisper encoder's
    head (the headline answer), the CNN and the MLP.

    TensorFlow is imported by this call (only for the reference runtime), not by ``import ser_cnn``.
    """
    from ser_cnn.serving.inference import load_recognizer as load

    return load(run_dir, models=models, calibrated=calibrated, runtime=runtime)


__all__ = [
    "EMOTIONS",
    "AudioError",
    "DataError",
    "NameFormatError",
    "ParameterError",
    "SerError",
    "__version__",
    "load_recognizer",
]
