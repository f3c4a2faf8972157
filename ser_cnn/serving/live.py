"""Live emotion: audio goes in as it is recorded, an answer comes out every hop (`ser-cnn listen`).

    >>> import ser_cnn
    >>> from ser_cnn.serving.live import LiveStream, microphone
    >>> stream = LiveStream(ser_cnn.load_recognizer(), hop=0.5)
    >>> for block, sr in microphone():              # or any blocks of samples, e.g. a call's
    ...     for update in stream.push(block, sr=sr):
    ...         print(update.end, update.scores, update.smoothed)
    >>> summary = stream.close()                    # the overall answer, and the last updates

A stream is cut into the windows a long recording is cut into (:func:`ser_cnn.audio.io.windows`:
the model's window, every ``hop`` seconds, and a last, shorter one at the end), and each window
is scored by the same step as a long file's (``Recognizer._score_windows``), so
``ser-cnn listen --input FILE --fast`` gives, window for window, the probabilities of
``ser-cnn infer --window W --hop H FILE``. The speech rule is the same too (a window counts when
it holds ``MIN_SPEECH`` s of speech), with one difference a live stream cannot avoid: a file's
windows are judged against the whole recording's loudest frame and noise floor, a stream's
against what it has heard so far (at most the last ``REFERENCE_SECONDS``): each window gets
the verdict a file of the stream up to its end gives its own last window. A file's earlier
windows can differ where a louder passage follows (it raises their bar), and a file in which no
window holds speech counts them all, which a stream cannot do without knowing that no speech
will follow. On the monologues of ``tools/long_recordings.py`` (RAVDESS with pauses, 3 s windows
every 0.5 s), 0.4 % of the voiced windows got another verdict with room tone 30 dB below the
speech, 0.08 % at 15 dB (``results/benchmark_infer.json``, key ``live.speech_rule``).

Serving code: no TensorFlow with the light runtime, no training imports.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr

from ser_cnn.audio.io import stream_audio, to_mono_float, windows
from ser_cnn.errors import AudioError, ParameterError
from ser_cnn.serving.prediction import Scores, Window

HOP = 0.5  # s between updates: twice a second, while a 3 s window still holds a whole phrase
SMOOTH = 3.0  # s: the smoothed answer averages the windows with speech that ended this recently
# s: a stream's windows are judged against the voiced windows that ended this recently, so a
# change of room or microphone is followed, and memory and the time per update stay bounded
REFERENCE_SECONDS = 300.0
BLOCK = 0.05  # s per block from a microphone or a played file: a window waits up to this long
# s: a microphone that gives nothing but digital silence this long is probably not allowed to
NO_INPUT_SECONDS = 2.0
STALLED_SECONDS = 2.0  # s without a block from a microphone that gave them: it is gone


@dataclass(frozen=True)
class Update:
    """The answer for one window of a stream, given as soon as its audio has arrived."""

    start: float  # s from the start of the stream
    end: float  # s
    scores: dict[str, Scores] | None  # each model's answer for this window; None: no speech
    smoothed: dict[str, Scores] | None  # each model's mean over the windows with speech that
    # ended in the last `smooth` seconds (this one included); None: there were none

    @property
    def window(self) -> Window:
        """This window as a long recording's :class:`~ser_cnn.serving.prediction.Window`."""
        return Window(self.start, self.end, self.scores or {}, silent=self.scores is None)

    def to_dict(self) -> dict:
        d = self.window.to_dict()
        d["smoothed"] = (
            None if self.smoothed is None else {m: s.to_dict() for m, s in self.smoothed.items()}
        )
        return d


@dataclass(frozen=True)
class Summary:
    """What a stream heard, given when it is closed."""

    duration: float  # s of audio received
    windows: int  # windows answered, with speech or not
    speech_windows: int
    scores: dict[str, Scores] | None  # each model's mean over the windows with speech; None: none
    last: list[Update] = field(default_factory=list)  # the updates close() gave (a last window)

    def to_dict(self) -> dict:
        return {
            "duration": round(self.duration, 3),
            "windows": self.windows,
            "speech_windows": self.speech_windows,
            "scores": None
            if self.scores is None
            else {m: s.to_dict() for m, s in self.scores.items()},
        }


class LiveStream:
    """Emotions of a stream of audio, window by window, as it arrives.

    Parameters
    ----------
    rec : Recognizer
        The models (:func:`ser_cnn.load_recognizer`); a speaker-normalised model must have been
        given its speaker's statistics first (:meth:`Recognizer.calibrate`).
    window : float, optional
        Seconds per window; default: the model's (3 s, the length it was trained on).
    hop : float
        Seconds between updates (between window starts); at most ``window``.
    smooth : float
        Seconds of recent windows with speech that :attr:`Update.smoothed` averages.
    """

    def __init__(
        self, rec, *, window: float | None = None, hop: float = HOP, smooth: float = SMOOTH
    ):
        self.rec = rec
        self.window, self.hop = rec._window_hop(window, hop)
        if not smooth > 0:
            raise ParameterError(f"smooth must be a positive number of seconds, got {smooth}")
        self.smooth = float(smooth)
        rec._check_speaker()
        self.sample_rate = sr = rec.sample_rate
        self._n_win, self._n_hop = round(self.window * sr), round(self.hop * sr)
        self._queue: deque[np.ndarray] = deque()  # blocks at `sr` the windows have not taken
        self._received = 0  # samples at `sr` pushed so far
        self._cut = 0  # windows cut so far
        self._closed = False
        # the one cutter of long recordings, fed as blocks arrive: push() asks it for a window
        # only once all of that window's samples are queued, so it never finds the queue empty
        self._windows = windows(self._blocks(), sr, window=self.window, hop=self.hop)
        self._input_sr: float | None = None
        self._resampler = None
        self._reference: deque[tuple[int, np.ndarray]] = deque()  # (end, levels) of voiced
        self._recent: deque[tuple[int, dict[str, np.ndarray]]] = deque()  # (end, probabilities)
        self._sums: dict[str, np.ndarray] = {}  # sum of each model's probabilities with speech
        self._answered = self._spoken = 0

    def _blocks(self) -> Iterator[np.ndarray]:
        while self._queue or not self._closed:
            yield self._queue.popleft()

    def push(self, samples: np.ndarray, sr: float) -> list[Update]:
        """Add the next samples of the stream; the updates of the windows they complete.

        Parameters
        ----------
        samples : np.ndarray, shape (n,) or (n, channels)
            Float samples in [-1, 1] or integer PCM, channels averaged (the shorter axis, as
            everywhere in ser_cnn). Any length, empty included.
        sr : float
            Their sample rate in Hz; the same for every push of a stream.
        """
        if self._closed:
            raise ParameterError("push() after close(): start a new LiveStream")
        self._append(self._resample(samples, sr))
        ready = []
        while self._received >= self._cut * self._n_hop + self._n_win:
            ready.append(next(self._windows))
            self._cut += 1
        return self._updates(ready)

    def close(self) -> Summary:
        """End the stream: the last, shorter window's update (in :attr:`Summary.last`, when at
        least ``MIN_TAIL`` s followed the last full window) and the overall answer."""
        if self._resampler is not None and not self._closed:
            self._append(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        self._closed = True
        last = self._updates(list(self._windows))
        scores = (
            {
                m: Scores.from_vector(s / self._spoken, self.rec.labels)
                for m, s in self._sums.items()
            }
            if self._spoken
            else None
        )
        return Summary(
            self._received / self.sample_rate, self._answered, self._spoken, scores, last
        )

    # -- internals -----------------------------------------------------------------------------

    def _resample(self, samples: np.ndarray, sr: float) -> np.ndarray:
        samples = np.asarray(samples)
        if self._input_sr is None:
            if not sr > 0:
                raise ParameterError(f"sr must be a positive sample rate in Hz, got {sr}")
            self._input_sr = float(sr)
            if self._input_sr != self.sample_rate:  # soxr's streaming resampler, as for files
                self._resampler = soxr.ResampleStream(
                    self._input_sr, self.sample_rate, 1, dtype="float32", quality="HQ"
                )
        elif float(sr) != self._input_sr:
            raise ParameterError(f"sr changed from {self._input_sr:g} to {sr:g} Hz in one stream")
        if samples.size == 0:
            return np.zeros(0, np.float32)
        y = to_mono_float(samples)
        if not np.isfinite(y).all():
            raise AudioError("the stream holds NaN or infinite samples; expected finite audio")
        return self._resampler.resample_chunk(y) if self._resampler is not None else y

    def _append(self, y: np.ndarray) -> None:
        if y.size:
            self._queue.append(y)
            self._received += len(y)

    def _updates(self, ready: list[tuple[int, np.ndarray]]) -> list[Update]:
        """Score the windows just cut, in one batch, and judge each by what came before it."""
        rec, sr = self.rec, self.sample_rate
        out = []
        for t, n, scores, levels in rec._score_windows(ready) if ready else []:
            end = t + n
            if scores is not None and levels is not None:
                self._reference.append((end, levels))
            while self._reference and self._reference[0][0] <= end - REFERENCE_SECONDS * sr:
                self._reference.popleft()
            if scores is not None:
                reference = (
                    np.concatenate([v for _, v in self._reference], axis=1)
                    if self._reference
                    else None
                )
                if not rec._is_speech(levels, reference):
                    scores = None
            if scores is not None:
                probs = {m: np.array(list(s.probabilities.values())) for m, s in scores.items()}
                self._recent.append((end, probs))
                for m, p in probs.items():
                    self._sums[m] = self._sums.get(m, 0.0) + p
                self._spoken += 1
            while self._recent and self._recent[0][0] <= end - self.smooth * sr:
                self._recent.popleft()
            smoothed = (
                {
                    m: Scores.from_vector(
                        np.mean([p[m] for _, p in self._recent], axis=0), rec.labels
                    )
                    for m in self._recent[0][1]
                }
                if self._recent
                else None
            )
            self._answered += 1
            out.append(Update(t / sr, end / sr, scores, smoothed))
        return out


def play(
    path: str | Path,
    *,
    sr: int,
    block: float = BLOCK,
    realtime: bool = True,
    start: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[np.ndarray]:
    """A file's samples at ``sr`` in blocks of about ``block`` seconds, as if it were being
    recorded: with ``realtime``, each block no sooner than its last sample would have been
    spoken, counted from ``start`` (a ``clock`` time; default: when the first block is asked
    for). Memory stays bounded (:func:`ser_cnn.audio.io.stream_audio`)."""
    played = 0  # samples yielded so far
    for y in stream_audio(path, block_seconds=block, target_sr=sr):
        if realtime:
            if start is None:
                start = clock()
            time.sleep(max(0.0, start + (played + len(y)) / sr - clock()))
        played += len(y)
        yield y


def microphone(
    *, block: float = BLOCK, device: int | str | None = None
) -> Iterator[tuple[np.ndarray, int]]:
    """Blocks ``(samples, sample rate)`` from a microphone (the default input device, or
    ``device``: its number or part of its name), mono float32 at the device's own rate, for
    as long as they are asked for.

    Needs the ``live`` extra (sounddevice, which brings PortAudio on macOS and Windows; on
    Linux, the system's PortAudio library). Raises :class:`~ser_cnn.errors.AudioError`, which
    says what to do, when sounddevice or PortAudio is missing, there is no such input device,
    or it cannot be opened; and when it gives only digital silence for ``NO_INPUT_SECONDS``
    (a microphone this program may not use, on some systems, records silence).
    """
    try:
        import sounddevice as sd
    except ImportError:
        raise AudioError(
            "listening to a microphone needs the sounddevice package: "
            "pip install 'ser_cnn[live]' (or give a recording with --input FILE)"
        ) from None
    except OSError as err:  # sounddevice raises it when the PortAudio library is not there
        raise AudioError(
            f"cannot reach a microphone: {err}; sounddevice needs the system's PortAudio "
            "(Debian, Ubuntu: apt-get install libportaudio2; Fedora: dnf install portaudio), "
            "or give a recording with --input FILE"
        ) from None
    try:
        info = sd.query_devices(device, kind="input")
    except (sd.PortAudioError, ValueError) as err:
        raise AudioError(
            f"no microphone found ({err}): connect one, allow this program to use it, or give a "
            "recording with --input FILE"
        ) from None
    sr = int(info["default_samplerate"])
    blocks: queue.Queue[np.ndarray] = queue.Queue()

    def arrived(indata, frames, when, status):  # PortAudio's thread: hand the block over
        blocks.put(indata.mean(axis=1).astype(np.float32))

    try:
        stream = sd.InputStream(
            device=device,
            channels=min(2, max(1, int(info["max_input_channels"]))),
            samplerate=sr,
            blocksize=round(block * sr),
            dtype="float32",
            callback=arrived,
        )
        stream.start()
    except (sd.PortAudioError, ValueError) as err:
        raise AudioError(
            f"cannot open the microphone {info['name']!r}: {err}; is this program allowed to use "
            "it (system privacy settings)?"
        ) from None
    heard, silent = False, 0
    with stream:
        while True:
            try:
                y = blocks.get(timeout=STALLED_SECONDS)
            except queue.Empty:
                raise AudioError(
                    f"the microphone {info['name']!r} stopped giving audio "
                    f"({STALLED_SECONDS:g} s without a block): was it unplugged?"
                ) from None
            if not heard:
                heard = bool(np.any(y))
                silent += len(y)
                if not heard and silent >= NO_INPUT_SECONDS * sr:
                    raise AudioError(
                        f"the microphone {info['name']!r} gives only digital silence: is this "
                        "program allowed to use it (system privacy settings), and is it muted?"
                    )
            yield y, sr
