"""A web page for ser_cnn: upload or record speech, see which emotion each model hears.

    ser-cnn app                     # http://127.0.0.1:7860, the shipped model
    ser-cnn app --run DIR --port 8000 --max-mb 50 --max-minutes 30

It shows the first model's emotion (the Whisper encoder's head when the run has one, else the
CNN's), every emotion's probability for each model, the waveform
and the log-mel spectrogram the CNN sees, and a timeline of the windows of a long recording. It
runs offline: the page comes from the Gradio wheel, fonts are the system's, analytics are off
and no share link is made. Gradio is imported only by :func:`build_app`; the analysis itself
(:func:`analyse`, the figures) needs only what ser_cnn needs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ser_cnn.audio import audio_info, load_audio
from ser_cnn.errors import AudioError, ParameterError, SerError
from ser_cnn.features import clip_log_mel
from ser_cnn.prediction import Prediction

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_MB = 20.0
DEFAULT_MAX_MINUTES = 10.0
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif")
MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace")
MODEL_NAMES = {"encoder": "Whisper encoder", "cnn": "CNN", "mlp": "MLP baseline"}
MODEL_COLORS = {"encoder": "#2ca02c", "cnn": "#1f77b4", "mlp": "#ff7f0e"}
EMOTION_COLORS = ("#7f7f7f", "#17becf", "#bcbd22", "#1f77b4", "#d62728", "#9467bd", "#2ca02c")
EMOTION_COLORS += ("#ff7f0e", "#8c564b", "#e377c2")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What the app accepts: file size (checked before decoding) and duration (from the header)."""

    max_mb: float = DEFAULT_MAX_MB
    max_minutes: float = DEFAULT_MAX_MINUTES

    def __post_init__(self):
        if not self.max_mb > 0 or not self.max_minutes > 0:
            raise ParameterError(
                f"limits must be positive, got {self.max_mb} MB and {self.max_minutes} minutes"
            )

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 2**20)

    def check(self, path: str | os.PathLike) -> float:
        """Refuse a file over the limits with an :class:`AudioError`; return its duration (s)."""
        path = Path(path)
        if not path.is_file():
            raise AudioError(f"{path.name}: no such file")
        size = path.stat().st_size
        if size > self.max_bytes:
            raise AudioError(
                f"{path.name}: {size / 2**20:.1f} MB is over this app's limit of "
                f"{self.max_mb:g} MB; send a shorter or compressed recording "
                "(or start the app with a larger --max-mb)"
            )
        info = audio_info(path)
        duration = info.frames / info.samplerate
        if duration > self.max_minutes * 60:
            raise AudioError(
                f"{path.name}: {duration / 60:.1f} minutes is over this app's limit of "
                f"{self.max_minutes:g} minutes; send a shorter recording "
                "(or start the app with a larger --max-minutes)"
            )
        return duration


@dataclass(frozen=True)
class Analysis:
    """One recording's prediction, with the samples and the log-mel behind it."""

    prediction: Prediction
    samples: np.ndarray  # mono, at sample_rate
    sample_rate: int
    log_mel: np.ndarray | None  # (n_mels, n_frames) the CNN scored; None without a CNN
    log_mel_caption: str
    frame_seconds: float = 0.01  # between the log-mel's frames


def analyse(rec, path: str | os.PathLike, limits: Limits = Limits()) -> Analysis:
    """Check ``path`` against ``limits`` and predict it with the Recognizer ``rec``.

    Raises a :class:`SerError` whose message names the file (not its folder) for a bad file.
    """
    path = Path(path)
    try:
        limits.check(path)
        prediction = rec.predict(path)
        sr = rec.sample_rate
        y = load_audio(path, target_sr=sr)
    except SerError as err:
        # uploads sit in a temporary folder: the user knows the file by its name alone
        raise type(err)(str(err).replace(str(path), path.name)) from None
    log_mel, caption, step = None, "", 0.01
    if "cnn" in rec.models:
        step = rec.feature_config.hop_length / rec.feature_config.sample_rate
        window = y
        caption = "the CNN's input: silence trimmed, level set, cut or padded to its window"
        voiced = [w for w in prediction.windows if not w.silent]
        if voiced:
            best = max(voiced, key=lambda w: w.scores["cnn"].probability)
            window = y[round(best.start * sr) : round(best.end * sr)]
            caption = (
                f"the CNN's input for its most confident window, {best.start:.1f}–{best.end:.1f} s"
            )
        log_mel = clip_log_mel(window, rec.feature_config)
    return Analysis(prediction, y, sr, log_mel, caption, step)


def verdict_text(prediction: Prediction) -> str:
    """The headline in Markdown: the first model's emotion, then the others'."""
    (first, scores), *others = prediction.scores.items()
    text = f"### The {MODEL_NAMES[first]} hears **{scores.emotion}** ({scores.probability:.2f})"
    for name, s in others:
        text += f"\n\n{MODEL_NAMES[name]}: {s.emotion} ({s.probability:.2f})"
    text += f" · {prediction.duration:.1f} s"
    if prediction.windows:
        voiced = sum(not w.silent for w in prediction.windows)
        text += f", {len(prediction.windows)} windows ({voiced} with speech, averaged)"
    return text


def probability_figure(prediction: Prediction, labels: tuple[str, ...]) -> Figure:
    """Every emotion's probability, one bar per model."""
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    n = len(prediction.scores)
    height = 0.8 / n
    rows = np.arange(len(labels))
    for i, (name, s) in enumerate(prediction.scores.items()):
        values = [s.probabilities[lab] for lab in labels]
        ax.barh(
            rows + (i - (n - 1) / 2) * height,
            values,
            height,
            label=MODEL_NAMES[name],
            color=MODEL_COLORS.get(name),
        )
    ax.set_yticks(rows, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def signal_figure(analysis: Analysis) -> Figure:
    """The waveform, and under it the log-mel spectrogram the CNN scored."""
    rows = 2 if analysis.log_mel is not None else 1
    fig = Figure(figsize=(9.6, 2.0 + 2.2 * (rows - 1)), layout="constrained")
    axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
    y, sr = analysis.samples, analysis.sample_rate
    bins = max(1, len(y) // 2000)  # min and max of each bin: the envelope a wave editor draws
    n = len(y) // bins * bins
    blocks = y[:n].reshape(-1, bins) if n else y.reshape(1, -1)
    t = np.arange(len(blocks)) * bins / sr
    axes[0].fill_between(t, blocks.min(axis=1), blocks.max(axis=1), color="#1f77b4", lw=0.5)
    axes[0].set(xlim=(0, len(y) / sr), xlabel="time (s)", ylabel="amplitude", title="waveform")
    if analysis.log_mel is not None:
        m = analysis.log_mel
        seconds = m.shape[1] * analysis.frame_seconds
        image = axes[1].imshow(
            m, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, m.shape[0])
        )
        axes[1].set(
            xlabel="time in the window (s)", ylabel="mel band", title=analysis.log_mel_caption
        )
        fig.colorbar(image, ax=axes[1], label="dB", pad=0.01)
    return fig


def timeline_figure(prediction: Prediction, labels: tuple[str, ...]) -> Figure | None:
    """Each window's emotion along the recording, one row per model; None for a short clip."""
    if not prediction.windows:
        return None
    colors = {lab: EMOTION_COLORS[i % len(EMOTION_COLORS)] for i, lab in enumerate(labels)}
    models = list(prediction.scores)
    fig = Figure(figsize=(9.6, 1.2 + 0.5 * len(models)), layout="constrained")
    ax = fig.add_subplot()
    starts = [w.start for w in prediction.windows]
    seen = set()
    for i, w in enumerate(prediction.windows):
        # each window is drawn from its start to the next one's: the hop it adds
        end = starts[i + 1] if i + 1 < len(starts) else w.end
        for row, name in enumerate(models):
            if w.silent:
                ax.barh(row, end - w.start, left=w.start, color="#dddddd", height=0.8)
                continue
            s = w.scores[name]
            label = None if s.emotion in seen else s.emotion
            seen.add(s.emotion)
            ax.barh(
                row,
                end - w.start,
                left=w.start,
                height=0.8,
                color=colors[s.emotion],
                alpha=0.35 + 0.65 * s.probability,
                label=label,
            )
    ax.set_yticks(range(len(models)), [MODEL_NAMES[m] for m in models])
    ax.invert_yaxis()
    ax.set(xlim=(0, prediction.duration), xlabel="time (s)")
    ax.set_title("emotion of each window (paler: less sure; grey: no speech)", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return fig


def learnt_from(rec) -> str:
    """What the loaded models learnt from, in words: RAVDESS for runs trained on its cache (the
    shipped model), else the corpora of ``ser-cnn train --data``, and what it was fine-tuned
    from."""
    run = next(iter(rec.runs.values()))
    if not run.data:
        return "learnt from RAVDESS acted English speech"
    text = f"learnt from {', '.join(run.data.get('corpora') or {}) or 'its own data'}"
    if run.source:
        text += f" (fine-tuned from a model of {', '.join(run.source.get('corpora') or [])})"
    return text


def build_app(rec, limits: Limits = Limits()):
    """The Gradio Blocks of the app around a loaded Recognizer (not launched)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio reads it on import
    import gradio as gr

    if rec.speaker_normalized:
        raise ParameterError(
            f"{rec.run_dir}: this CNN needs several recordings of one speaker "
            "(speaker-normalised); the app judges every recording alone"
        )

    def cleared(error: str = ""):
        return (
            gr.update(value=error, visible=bool(error)),
            "",
            None,
            None,
            gr.update(value=None, visible=False),
        )

    def run(path):
        if not path:
            return cleared()
        try:
            result = analyse(rec, path, limits)
        except SerError as err:
            return cleared(f"**Cannot analyse this recording.** {err}")
        except Exception as err:
            log.exception("analysing %s", path)
            return cleared(f"**Cannot analyse this recording:** internal error ({err!r})")
        p = result.prediction
        timeline = timeline_figure(p, rec.labels)
        return (
            gr.update(value="", visible=False),
            verdict_text(p),
            probability_figure(p, rec.labels),
            signal_figure(result),
            gr.update(value=timeline, visible=timeline is not None),
        )

    intro = (
        "# ser_cnn: which emotion is in this voice?\n"
        "Upload a recording or record one with your microphone. It tells apart "
        f"{', '.join(rec.labels)}, {learnt_from(rec)}: treat results on "
        "other recordings with care. Files up to "
        f"{limits.max_mb:g} MB and {limits.max_minutes:g} minutes; recordings over "
        f"{2 * rec.window:g} s are cut into {rec.window:g} s windows."
    )
    with gr.Blocks(title="ser_cnn", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(intro)
        with gr.Row():
            with gr.Column(scale=1):
                audio = gr.Audio(
                    sources=["upload", "microphone"],
                    type="filepath",
                    label="recording",
                    elem_id="recording",
                )
                error = gr.Markdown(visible=False, elem_id="error")
                verdict = gr.Markdown(elem_id="verdict")
            with gr.Column(scale=1):
                bars = gr.Plot(label="every emotion's probability", format="png", elem_id="bars")
        signal = gr.Plot(label="what the model sees", format="png", elem_id="signal")
        timeline = gr.Plot(label="timeline", format="png", visible=False, elem_id="timeline")
        audio.change(run, audio, [error, verdict, bars, signal, timeline], show_progress="minimal")
    return demo


def launch(demo, limits: Limits = Limits(), *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT):
    """Serve ``demo`` until interrupted: offline, no share link, no tracebacks shown."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    theme = gr.themes.Default(font=list(SYSTEM_FONTS), font_mono=list(MONO_FONTS))
    demo.queue(default_concurrency_limit=1)  # one model call at a time
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        show_error=False,
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
        max_file_size=limits.max_bytes,
        theme=theme,
        css="#error p, #error strong { color: #b42318; }",
        quiet=True,
        prevent_thread_lock=True,
    )
    print(f"ser_cnn app: {url} (Ctrl+C stops it)", flush=True)
    demo.block_thread()
