"""Read any audio into one form: mono float32 samples at 16 kHz.

Everything in ser_cnn that touches audio (preprocessing, training, inference) goes through
:func:`load_audio`, so a WAV from Zenodo, a FLAC copy, a phone's 44.1 kHz stereo recording and
a NumPy array all arrive at the model the same way. Bad input is refused here, at the boundary,
with an :class:`~ser_cnn.errors.AudioError` that names the file and the problem.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ser_cnn.errors import AudioError, ParameterError

SAMPLE_RATE = 16_000  # Hz: speech carries its emotion cues well below 8 kHz (the Nyquist here)
MIN_DURATION = 0.1  # s: shorter than one syllable, nothing to analyse
SILENCE_PEAK = 1e-6  # full scale = 1.0; -120 dBFS, below the quantisation step of 16-bit audio
MAX_CHANNELS = 64  # an array with more "channels" than this has its axes the wrong way round
# Long recordings: one rule for all of ser_cnn (prediction, speaker calibration)
# Recordings whose speech (silence and room tone trimmed at both ends, as for the CNN's input)
# lasts up to this many windows are analysed as one clip, so padding a clip does not window it.
LONG_FACTOR = 2.0
HOP_FRACTION = 0.5  # default hop between windows of a long recording: half a window
MIN_TAIL = 1.0  # s: a last window shorter than this is dropped (too little to judge)
# s: a window of a long recording with less speech than this (frames the CNN's trim would keep,
# judged against the whole recording's loudest frame and noise floor) holds only room tone or
# noise: like digital silence, it is listed but neither scored nor averaged
MIN_SPEECH = 0.5
BLOCK_SECONDS = 60.0  # long files are read in blocks of this much audio (bounded memory)

# Suffixes that ser_cnn looks for when it scans folders. Anything libsndfile reads can still be
# passed by name; these are the ones worth finding by themselves.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".w64", ".rf64")

AudioSource = str | os.PathLike | np.ndarray


def load_audio(
    source: AudioSource, *, sr: float | None = None, target_sr: int = SAMPLE_RATE
) -> np.ndarray:
    """Load audio from a path or an array as mono float32 at ``target_sr``.

    Parameters
    ----------
    source : str, os.PathLike or np.ndarray
        A file libsndfile can read (WAV of any bit depth, FLAC, OGG, MP3 where supported, ...)
        or an array of samples: shape ``(n,)``, or 2-D with channels on the shorter axis
        (``(n, channels)`` as soundfile returns, or ``(channels, n)`` as librosa returns).
        Integer arrays are scaled from their type's full range to [-1, 1].
    sr : float, optional
        Sample rate of ``source`` in Hz; required for an array, not allowed for a file.
    target_sr : int
        Sample rate of the result in Hz.

    Returns
    -------
    np.ndarray, shape (n_samples,), float32
        Channels averaged to mono, resampled with soxr (high quality) when needed.

    Raises
    ------
    AudioError
        Missing, empty, unreadable or truncated file; non-finite samples; shorter than
        ``MIN_DURATION``; digital silence.
    ParameterError
        Wrong argument types or shapes.
    """
    if isinstance(source, str | os.PathLike):
        if sr is not None:
            raise ParameterError("sr is read from the file: pass sr= only with an array")
        name = str(source)
        y, sr = _read_file(Path(source))
    elif isinstance(source, np.ndarray):
        if sr is None:
            raise ParameterError("an array needs its sample rate, e.g. load_audio(y, sr=44100)")
        name = "audio array"
        y = to_mono_float(source)
    else:
        raise ParameterError(
            f"expected a path or a numpy array of samples, got {type(source).__name__}"
        )
    return _validate_and_resample(y, float(sr), target_sr, name)


def to_mono_float(y: np.ndarray) -> np.ndarray:
    """Scale an array of samples to float32 in [-1, 1] and average its channels.

    Parameters
    ----------
    y : np.ndarray, shape (n,) or 2-D with channels on the shorter axis
        Float samples are kept as they are; integer samples are divided by their type's range.

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    if y.ndim not in (1, 2) or y.size == 0:
        raise ParameterError(
            f"expected samples of shape (n,) or (n, channels), got an array of shape {y.shape}"
        )
    if np.issubdtype(y.dtype, np.integer):
        info = np.iinfo(y.dtype)
        # unsigned PCM (8-bit WAV) is centred on half its range
        offset = (info.max + 1) / 2 if info.min == 0 else 0.0
        y = (y.astype(np.float64) - offset) / (info.max + 1 - offset)
    elif not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"expected integer or float samples, got dtype {y.dtype}")
    if y.ndim == 2:
        channel_axis = 0 if y.shape[0] < y.shape[1] else 1
        if y.shape[channel_axis] > MAX_CHANNELS:
            raise ParameterError(
                f"expected at most {MAX_CHANNELS} channels on the shorter axis, got shape {y.shape}"
            )
        y = y.mean(axis=channel_axis)
    return np.asarray(y, dtype=np.float32)


def audio_info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """Header information of an audio file (rate, channels, frames), after the same checks
    as :func:`load_audio`, without decoding the samples."""
    path = Path(path)
    _check_path(path)
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(
            f"{path}: not an audio file that libsndfile can read ({_short(err)}); "
            "expected WAV, FLAC, OGG or another format libsndfile supports"
        ) from None


def stream_audio(
    path: str | os.PathLike, *, block_seconds: float = 60.0, target_sr: int = SAMPLE_RATE
) -> Iterator[np.ndarray]:
    """Yield a long file as consecutive mono float32 blocks at ``target_sr``.

    Memory stays bounded by one block, whatever the file's length: an hour-long recording is
    never held in memory whole. Resampling is done by a streaming soxr resampler, so the
    concatenated blocks equal :func:`load_audio` of the whole file up to resampler edge effects.

    Parameters
    ----------
    path : str or os.PathLike
    block_seconds : float
        Length of each block read from the file, in seconds of source audio.

    Yields
    ------
    np.ndarray, shape (n,), float32
    """
    if block_seconds <= 0:
        raise ParameterError(f"block_seconds must be positive, got {block_seconds}")
    path = Path(path)
    info = audio_info(path)
    _check_riff_complete(path)
    block = max(1, int(block_seconds * info.samplerate))
    resampler = (
        soxr.ResampleStream(info.samplerate, target_sr, 1, dtype="float32", quality="HQ")
        if info.samplerate != target_sr
        else None
    )
    try:
        blocks = sf.blocks(str(path), blocksize=block, dtype="float32", always_2d=True)
        for chunk in blocks:
            y = chunk.mean(axis=1)
            if not np.isfinite(y).all():
                raise AudioError(f"{path}: contains NaN or infinite samples; expected finite audio")
            yield resampler.resample_chunk(y) if resampler is not None else y
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"{path}: truncated or corrupt audio data ({_short(err)})") from None
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        if tail.size:
            yield tail


def is_long(speech_seconds: float, window: float) -> bool:
    """Whether a recording with ``speech_seconds`` of speech is cut into windows rather than
    analysed whole."""
    return speech_seconds > LONG_FACTOR * window


def read_whole(duration: float, window: float) -> bool:
    """Whether a file of ``duration`` s is read whole to measure its speech: up to one block,
    or longer where even its full length would not make it long. Longer files are windowed
    unread, so memory stays bounded."""
    return duration <= max(BLOCK_SECONDS, LONG_FACTOR * window)


def is_voiced(samples: np.ndarray) -> bool:
    """False for a window of digital silence, which is neither scored nor calibrated on."""
    return bool(np.max(np.abs(samples)) >= SILENCE_PEAK)


def check_window_hop(window: float, hop: float | None = None) -> tuple[float, float]:
    """``(window, hop)`` in seconds, hop defaulting to half the window; refuses bad values."""
    window = float(window)
    hop = window * HOP_FRACTION if hop is None else float(hop)
    if not window > 0 or not hop > 0:
        raise ParameterError(f"window and hop must be positive seconds, got {window}, {hop}")
    if hop > window:
        raise ParameterError(f"hop ({hop} s) must not exceed the window ({window} s)")
    return window, hop


def windows(
    blocks: Iterator[np.ndarray], sr: int, *, window: float, hop: float
) -> Iterator[tuple[int, np.ndarray]]:
    """Cut a recording, read as consecutive blocks, into windows.

    Parameters
    ----------
    blocks : iterator of np.ndarray, shape (n,)
        The recording's samples at ``sr``, in order (e.g. from :func:`stream_audio`).
    sr : int
        Sample rate in Hz.
    window, hop : float
        Window length and the step between window starts, in seconds.

    Yields
    ------
    (int, np.ndarray)
        Start sample and samples of windows at 0, hop, 2·hop, ..., and a last, shorter one
        for the audio they leave over, if it is at least ``MIN_TAIL`` seconds long.
    """
    n_win, n_hop = round(window * sr), round(hop * sr)
    buffer = np.zeros(0, dtype=np.float32)  # the recording from sample `offset` on
    offset = total = 0
    last_end = 0  # end (in samples) of the last window taken
    for block in blocks:
        total += len(block)
        buffer = np.concatenate([buffer, block])
        while len(buffer) >= n_win:
            yield offset, buffer[:n_win].copy()
            last_end = offset + n_win
            buffer, offset = buffer[n_hop:], offset + n_hop
    if total - last_end > 0 and len(buffer) >= MIN_TAIL * sr:
        yield offset, buffer.copy()


def _check_path(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder; expected an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: is empty (0 bytes); expected an audio file")


def _read_file(path: Path) -> tuple[np.ndarray, int]:
    info = audio_info(path)
    _check_riff_complete(path)
    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"{path}: truncated or corrupt audio data ({_short(err)})") from None
    if info.frames > 0 and len(y) < info.frames:
        raise AudioError(
            f"{path}: truncated: the header promises {info.frames} frames, the file holds {len(y)}"
        )
    if y.shape[0] == 0:
        raise AudioError(f"{path}: holds no samples; expected at least {MIN_DURATION} s of audio")
    return y.mean(axis=1), sr


def _check_riff_complete(path: Path) -> None:
    """Refuse a WAV whose data chunk is shorter than its header says.

    libsndfile silently reads what is there, so a half-downloaded WAV would otherwise pass as a
    shorter clip.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return
        endian = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, length = struct.unpack(endian + "4sI", f.read(8))
            if chunk_id == b"data":
                # streaming writers leave the size at 0 or 0xFFFFFFFF: unknown, not truncated
                if length in (0, 0xFFFFFFFF):
                    return
                missing = pos + 8 + length - size
                if missing > 0:
                    raise AudioError(
                        f"{path}: truncated WAV: the data chunk declares {length} bytes, "
                        f"{missing} of them are missing"
                    )
                return
            pos += 8 + length + (length & 1)


def _validate_and_resample(y: np.ndarray, sr: float, target_sr: int, name: str) -> np.ndarray:
    if not sr > 0 or not np.isfinite(sr):
        raise ParameterError(f"sample rate must be a positive number of Hz, got {sr}")
    if not np.isfinite(y).all():
        raise AudioError(f"{name}: contains NaN or infinite samples; expected finite audio")
    duration = len(y) / sr
    if duration < MIN_DURATION:
        raise AudioError(
            f"{name}: too short to analyse ({duration:.3f} s); expected at least {MIN_DURATION} s"
        )
    peak = float(np.max(np.abs(y)))
    if peak < SILENCE_PEAK:
        raise AudioError(
            f"{name}: digital silence (peak amplitude {peak:.1e}); there is no voice to analyse"
        )
    if sr != target_sr:
        y = soxr.resample(y, sr, target_sr, quality="HQ")
    return np.ascontiguousarray(y, dtype=np.float32)


def _short(err: Exception) -> str:
    text = str(err).strip()
    # libsndfile messages start with "Error opening '<path>': "; the path is already said
    return text.split("': ", 1)[-1] if "': " in text else text
