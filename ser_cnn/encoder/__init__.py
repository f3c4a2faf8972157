"""The pretrained Whisper encoder: its weights, read without CTranslate2, in a Keras model.

:mod:`ser_cnn.encoder.ct2` reads CTranslate2's ``model.bin`` into NumPy arrays;
:mod:`ser_cnn.encoder.whisper` builds Whisper's audio encoder in Keras, loads those weights
from the pinned package (extra ``encoder``: Whisper tiny.en) and checks that they are the ones
a run expects. Its input is :class:`ser_cnn.features.logmel.WhisperFeatureConfig`'s log-mel.
Importing this package does not import Keras.
"""

from ser_cnn.encoder.ct2 import Ct2Header, read_ct2, read_header
from ser_cnn.encoder.whisper import (
    Encoder,
    EncoderSource,
    WhisperDimensions,
    build_encoder,
    check_source,
    installed_source,
    load_encoder,
    load_weights,
)

__all__ = [
    "Ct2Header",
    "Encoder",
    "EncoderSource",
    "WhisperDimensions",
    "build_encoder",
    "check_source",
    "installed_source",
    "load_encoder",
    "load_weights",
    "read_ct2",
    "read_header",
]
