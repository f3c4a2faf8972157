"""The robustness benchmark's fixed conditions: how ``tools/robustness.py`` changes a clip.

Built from :mod:`ser_cnn.audio.degrade`, plus three things the training chain never uses, so the
benchmark measures generalisation, not memory: the ``UNSEEN_NOISE`` (mains hum), the
``BENCHMARK_ROOMS`` (no training room has their size) and the ``BENCHMARK_CODEC`` (Opus).
Each condition is called as ``condition(y, sr, rng, babble=pool)`` and returns float32 samples.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from ser_cnn.audio.degradations import BENCHMARK_CODEC, UNSEEN_NOISE
from ser_cnn.audio.degrade import (
    CODECS,
    add_noise,
    apply_rir,
    codec,
    gain,
    pad,
    telephone,
)
from ser_cnn.audio.rooms import room_impulse_response

# UNSEEN_NOISE (mains hum and buzz) and BENCHMARK_CODEC (Opus) are ser_cnn.audio.degradations'
# names. Shoebox rooms (length, width, height) in m that share no size with rooms.TRAIN_ROOMS; the
# hall is larger than any of them. Simulated decay (T20): 0.26-0.32 s and 0.81-0.83 s.
BENCHMARK_ROOMS = {
    "meeting room": (6.3, 4.9, 2.8),
    "hall": (10.0, 8.0, 5.0),
}
RIR_BANK = 24  # placements per room, drawn once and cached (an RIR costs ~0.1 s)


def _clean(y, sr, rng, *, babble=None):
    return gain(y, 0.0)


def _with_gain(y, sr, rng, *, db, max_peak, babble=None):
    return gain(y, db, max_peak=max_peak)


def _with_noise(y, sr, rng, *, kind, snr_db, babble=None):
    return add_noise(y, sr, snr_db=snr_db, kind=kind, rng=rng, babble=babble)


def _with_telephone(y, sr, rng, *, mu_law, babble=None):
    return telephone(y, sr, mu_law=mu_law)


def _with_reverb(y, sr, rng, *, room, rt60, babble=None):
    return apply_rir(y, _bank_rir(int(sr), room, rt60, int(rng.integers(RIR_BANK))))


def _with_pad(y, sr, rng, *, before, after, tone_db, babble=None):
    return pad(y, sr, before=before, after=after, tone_db=tone_db, rng=rng)


def _with_codec(y, sr, rng, *, kind, babble=None):
    return codec(y, sr, kind=kind)


CONDITIONS: dict[str, Callable[..., np.ndarray]] = {
    "clean": functools.partial(_clean),
    "gain -20 dB": functools.partial(_with_gain, db=-20.0, max_peak=1.0),
    # About one RAVDESS clip in ten peaks above -10 dBFS: those are raised only to a peak of
    # 1.0 (0 dBFS), never clipped. Clipping is a different fault, not tested here.
    "gain +10 dB": functools.partial(_with_gain, db=10.0, max_peak=1.0),
    "white 20 dB": functools.partial(_with_noise, kind="white", snr_db=20.0),
    "white 10 dB": functools.partial(_with_noise, kind="white", snr_db=10.0),
    "white 5 dB": functools.partial(_with_noise, kind="white", snr_db=5.0),
    "babble 10 dB": functools.partial(_with_noise, kind="babble", snr_db=10.0),
    f"{UNSEEN_NOISE} 10 dB": functools.partial(_with_noise, kind=UNSEEN_NOISE, snr_db=10.0),
    "telephone": functools.partial(_with_telephone, mu_law=True),
    "reverb 0.3 s": functools.partial(_with_reverb, room="meeting room", rt60=0.3),
    "reverb 0.8 s": functools.partial(_with_reverb, room="hall", rt60=0.8),
    # RAVDESS speech is quiet (active level -36 dBFS median, -59 to -15): -70 dBFS room tone
    # lies 11-55 dB below it, like the noise floor of a phone in a quiet room.
    "room-tone padding": functools.partial(_with_pad, before=0.3, after=2.0, tone_db=-70.0),
    "codec": functools.partial(_with_codec, kind=BENCHMARK_CODEC),
}


def describe_conditions() -> dict[str, dict]:
    """Each benchmark condition's operation and parameters, for a results file's protocol."""
    out = {}
    for name, condition in CONDITIONS.items():
        params = dict(condition.keywords)
        if "room" in params:
            params["room_m"] = list(BENCHMARK_ROOMS[params["room"]])
            params["placements"] = RIR_BANK
        if params.get("kind") in CODECS:
            container, subtype, _, level = CODECS[params["kind"]]
            params.update(format=f"{container}/{subtype}", compression_level=level)
        operation = condition.func.__name__.removeprefix("_").removeprefix("with_")
        out[name] = {"operation": operation, **params}
    return out


@functools.lru_cache(maxsize=4 * RIR_BANK)
def _bank_rir(sr: int, room: str, rt60: float, index: int) -> np.ndarray:
    """Placement ``index`` of a benchmark room: the same talker and microphone every run."""
    rng = np.random.default_rng([sr, round(rt60 * 1000), index, *map(ord, room)])
    return room_impulse_response(sr, rt60=rt60, room=BENCHMARK_ROOMS[room], rng=rng)
