"""Rooms: simulated impulse responses from a talker to a microphone in shoebox rooms.

Used by :func:`ser_cnn.audio.degrade.reverb` (the training chain, ``TRAIN_ROOMS``) and by the
benchmark's reverberation (:mod:`ser_cnn.audio.conditions`, other rooms).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyroomacoustics as pra

from ser_cnn.errors import ParameterError

# Shoebox rooms of the training chain, (length, width, height) in m; RT60s are Sabine's. The
# benchmark's rooms (ser_cnn/audio/conditions.py) are others.
TRAIN_ROOMS = {
    "bathroom": (2.6, 2.2, 2.4),
    "small office": (3.4, 2.9, 2.6),
    "bedroom": (4.1, 3.6, 2.5),
    "living room": (5.8, 4.4, 2.6),
    "classroom": (8.2, 6.6, 3.1),
}
ISM_ORDER = 3  # image-source order of the early reflections; ray tracing does the late tail
WALL_MARGIN = 0.5  # m: talker and microphone stay this far from every wall
MIN_DISTANCE = 0.5  # m: between talker and microphone
TALKER_HEIGHT = (1.2, 1.8)  # m: mouth of a seated or standing talker
MIC_HEIGHT = (0.7, 1.5)  # m: a phone or laptop on a desk, or held


def room_impulse_response(
    sr: int, *, rt60: float, room: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """Impulse response from a random talker to a random microphone in a shoebox room.

    Walls absorb uniformly, as much as Sabine's formula needs for ``rt60``
    (``pra.inverse_sabine``). Pyroomacoustics simulates the early reflections with the image
    source method (order ``ISM_ORDER``) and the late tail by ray tracing: the full image
    method would need orders of 100-200 for RT60 = 1 s in a small room and take seconds,
    and its decay overshoots the target in large rooms. The response starts at the direct
    sound, so it does not delay the speech.

    Pyroomacoustics draws from a package-wide generator; it is reseeded from ``rng`` here,
    so do not call this from several threads at once.

    Parameters
    ----------
    sr : int
        Hz.
    rt60 : float
        Reverberation time in s (Sabine).
    room : sequence of 3 float
        (length, width, height) in m, each > 2 · WALL_MARGIN.
    rng : np.random.Generator
        Draws the talker and microphone positions and seeds the ray tracer.

    Returns
    -------
    np.ndarray, shape (m,), float32
    """
    dims = np.asarray(room, dtype=float)
    if dims.shape != (3,) or not np.all(dims > 2 * WALL_MARGIN + 0.2):
        raise ParameterError(f"room must be (length, width, height) > 1.2 m each, got {room}")
    try:
        absorption, _ = pra.inverse_sabine(rt60, dims)
    except ValueError:
        raise ParameterError(f"rt60={rt60} s is impossible in a {dims.tolist()} m room") from None
    talker, mic = _placement(dims, rng)
    pra.random.seed(numpy=int(rng.integers(2**32)), libroom=int(rng.integers(2**32)))
    shoebox = pra.ShoeBox(
        dims,
        fs=int(sr),
        materials=pra.Material(float(absorption)),
        max_order=ISM_ORDER,
        ray_tracing=True,
        air_absorption=False,
    )
    shoebox.add_source(talker)
    shoebox.add_microphone(mic)
    shoebox.compute_rir()
    h = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    # pyroomacoustics centres each arrival on a fractional-delay filter of this many taps
    onset = max(0, int(np.argmax(np.abs(h))) - pra.constants.get("frac_delay_length") // 2)
    return h[onset:].astype(np.float32)


def _placement(dims: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Talker and microphone positions (m), WALL_MARGIN from the walls, MIN_DISTANCE apart."""
    low, high = np.full(2, WALL_MARGIN), dims[:2] - WALL_MARGIN
    while True:
        talker = np.append(rng.uniform(low, high), rng.uniform(*TALKER_HEIGHT))
        mic = np.append(rng.uniform(low, high), rng.uniform(*MIC_HEIGHT))
        if np.linalg.norm(talker - mic) >= MIN_DISTANCE:
            return np.minimum(talker, dims - WALL_MARGIN), np.minimum(mic, dims - WALL_MARGIN)
