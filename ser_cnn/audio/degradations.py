"""The names of the degradations, in one place: every module and tool that names one takes it here.

:mod:`ser_cnn.audio.degrade` makes the degradations, :mod:`ser_cnn.audio.conditions` builds the
robustness benchmark from them, a training config chooses among the chain's kinds (``degradations``,
``degradation_p``: :class:`ser_cnn.config.TrainConfig`), and :mod:`ser_cnn.training.augment` and the
tools pass them on. This module imports nothing, so reading a config or a run folder never
loads the audio code (scipy, soxr, pyroomacoustics).

The training chain's kinds, in the order the chain applies them. Each draws from its own
random stream, spawned in this order, so the order is part of every degraded copy ever made:
never reorder or insert, only append.

=========  ==================================================================================
speed      the talker: tempo and pitch together, as a tape played faster or slower
reverb     the room: a simulated shoebox room of ``ser_cnn.audio.rooms.TRAIN_ROOMS`` ("rooms")
pad        the recording: room tone before and after the speech ("room-tone padding")
noise      the environment: one of :data:`TRAIN_NOISES`, babble of other training actors
gain       the microphone level
band       the channel ("band limits"): one of :data:`BAND_KINDS`
codec      compression: :data:`TRAIN_CODEC`
=========  ==================================================================================
"""

from __future__ import annotations

CHAIN_KINDS = ("speed", "reverb", "pad", "noise", "gain", "band", "codec")

# Noise (ser_cnn.audio.degrade.make_noise): three colours of Gaussian noise (power spectrum ∝ 1/f^0,
# 1/f, 1/f^2), babble of 4-6 other talkers, and mains hum over rumble.
COLOURS = ("white", "pink", "brown")
NOISE_KINDS = (*COLOURS, "babble", "hum")
TRAIN_NOISES = ("white", "pink", "babble")  # what the chain's noise draws from
UNSEEN_NOISE = "hum"  # the benchmark's noise that training never uses

# Band limits (the chain's band kind applies one): a narrow-band telephone line (G.712, maybe
# mu-law), or a low-pass filter (a cheap microphone, a resampled upload).
BAND_KINDS = ("telephone", "lowpass")

# Lossy codecs (ser_cnn.audio.degrade.CODECS holds how libsndfile writes each).
CODEC_KINDS = ("gsm", "mp3", "vorbis", "opus")
TRAIN_CODEC = "mp3"  # the one codec of the training chain
BENCHMARK_CODEC = "opus"  # a speech codec training never heard
