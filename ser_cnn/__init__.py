"""ser_cnn: speech emotion recognition with a log-mel CNN and an MLP baseline, on RAVDESS.

Importing the package is cheap: TensorFlow is imported only by the modules that need it
(training and inference), never here.
"""

from ser_cnn.data import EMOTIONS
from ser_cnn.errors import AudioError, DataError, NameFormatError, ParameterError, SerError

__version__ = "0.1.0"

__all__ = [
    "EMOTIONS",
    "AudioError",
    "DataError",
    "NameFormatError",
    "ParameterError",
    "SerError",
    "__version__",
]
