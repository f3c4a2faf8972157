"""A web page for ser_cnn: upload or record speech, see which emotion each model hears.

    ser-cnn app                     # http://127.0.0.1:7860, the shipped model
    ser-cnn app --run DIR --port 8000 --max-mb 50 --max-minutes 30

It shows the first model's emotion (the Whisper encoder's head when the run has one, else the
CNN's), every emotion's probability for each model, the log-mel spectrogram the CNN scored and,
for a long recording, each window's probabilities along the recording (the recording's waveform
is in its player). The browser draws all of them (HTML bars, a native Gradio plot, a small
image): drawing three Matplotlib figures per answer took about 0.35 s of the server's CPU, five
times the models' own time, so the server now only sends numbers. Several people can use it at
once: ``--workers`` analyses run at a time and up to ``--queue`` wait, each seeing its place in
the queue; when the queue is full, a newcomer is asked to try again. It runs offline: the page
comes from the Gradio wheel, fonts are the system's, analytics are off and no share link is
made. Gradio is imported only by :func:`build_app`; the analysis itself (:func:`analyse`, what
the page shows) needs only what ser_cnn needs.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ser_cnn.audio.io import audio_info, load_audio
from ser_cnn.errors import AudioError, ParameterError, SerError
from ser_cnn.features.logmel import clip_log_mel
from ser_cnn.serving.live import HOP, LiveStream, Summary, Update
from ser_cnn.serving.prediction import Prediction, Window

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_MB = 20.0
DEFAULT_MAX_MINUTES = 10.0
# analyses at a time: one per core of a 2-core machine; the models' own threads share the rest
DEFAULT_WORKERS = 2
# uploads waiting at most: about 5 s of waiting at 10 answers/s; then newcomers are refused
DEFAULT_QUEUE = 48
# live microphones at a time: each needs about a quarter of a core for the three models at a
# 0.5 s hop, so four leave the other half of the machine to uploads
DEFAULT_LIVE = 4
LIVE_CHUNK = 0.25  # s of microphone audio the browser sends at a time: half the live hop
LIVE_LIMIT = 600  # s one live session may last; then its place goes to the next in the queue
LIVE_SHOWN = 60.0  # s of the most recent windows the live timeline shows
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


def probability_html(prediction: Prediction, labels: tuple[str, ...]) -> str:
    """Every emotion's probability as HTML bars, one per model, for the browser to draw.

    Each bar carries its model, emotion and probability as ``data-`` attributes."""
    models = list(prediction.scores)
    legend = "".join(
        f'<span><i style="background:{MODEL_COLORS.get(m, "#888")}"></i>{MODEL_NAMES[m]}</span>'
        for m in models
    )
    rows = []
    for lab in labels:
        bars = "".join(
            f'<div class="bar" data-model="{m}" data-emotion="{lab}" data-p="{p:.4f}">'
            f'<i style="width:{100 * p:.1f}%;background:{MODEL_COLORS.get(m, "#888")}"></i>'
            f"<span>{p:.2f}</span></div>"
            for m in models
            for p in [prediction.scores[m].probabilities[lab]]
        )
        rows.append(f'<div class="row"><span class="emotion">{lab}</span><div>{bars}</div></div>')
    return f'<div class="probabilities"><div class="legend">{legend}</div>{"".join(rows)}</div>'


# the bars' look, given to the page once (launch)
PROBABILITY_CSS = """
.probabilities { font-size: 0.85em; }
.probabilities .legend span { margin-right: 1em; }
.probabilities .legend i { display: inline-block; width: 0.8em; height: 0.8em;
  margin-right: 0.3em; }
.probabilities .row { display: grid; grid-template-columns: 6em 1fr; align-items: center;
  border-top: 1px solid #8882; padding: 2px 0; }
.probabilities .bar { display: flex; align-items: center; height: 0.8em; margin: 1px 0; }
.probabilities .bar i { display: block; height: 100%; min-width: 1px; }
.probabilities .bar span { margin-left: 0.4em; font-size: 0.8em; opacity: 0.8; }
#log_mel img { image-rendering: auto; width: 100%; height: 12em; object-fit: fill; }
.windows { display: flex; height: 2em; }
.windows i { flex: 1 1 0; min-width: 1px; }
#live_now h2 { font-size: 2.2em; }
"""


@functools.cache
def _magma() -> np.ndarray:
    """Matplotlib's magma colour map as a (256, 3) uint8 table, read once."""
    from matplotlib import colormaps

    return (colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def log_mel_image(log_mel: np.ndarray) -> np.ndarray:
    """A log-mel (n_mels, n_frames) as an RGB image (n_mels, n_frames, 3), low bands at the
    bottom, from its quietest (black) to its loudest (yellow) cell."""
    low, high = float(log_mel.min()), float(log_mel.max())
    scaled = (log_mel - low) / max(high - low, 1e-6)  # 1e-6 dB: a flat log-mel stays black
    return _magma()[np.round(scaled[::-1] * 255).astype(np.uint8)]


TIMELINE_COLUMNS = ("time", "emotion", "probability")  # time: the window's centre (s)


def timeline_frame(windows: Iterable[Window], model: str, labels: tuple[str, ...]) -> pd.DataFrame:
    """Each window's probabilities from ``model``, one row per window with speech and emotion,
    for a line plot along the recording; windows without speech have no rows."""
    rows = [
        ((w.start + w.end) / 2, lab, w.scores[model].probabilities[lab])
        for w in windows
        if not w.silent
        for lab in labels
    ]
    return pd.DataFrame(rows, columns=list(TIMELINE_COLUMNS))


def emotion_colors(labels: tuple[str, ...]) -> dict[str, str]:
    """A colour per emotion, the same in every plot."""
    return {lab: EMOTION_COLORS[i % len(EMOTION_COLORS)] for i, lab in enumerate(labels)}


def timeline_plot(model: str, labels: tuple[str, ...]) -> dict:
    """The settings of a line plot of :func:`timeline_frame` (``gr.LinePlot(**...)``)."""
    return {
        "x": "time",
        "y": "probability",
        "color": "emotion",
        "x_title": "time (s)",
        "y_lim": [0, 1],
        "color_map": emotion_colors(labels),
        "label": f"each window's probabilities ({MODEL_NAMES[model]}; no point: no speech)",
        "show_label": True,
    }


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


@dataclass
class LiveSession:
    """One browser's live microphone: its stream and the updates it gave."""

    stream: LiveStream
    updates: list[Update]


def live_text(updates: list[Update], model: str) -> str:
    """The live headline in Markdown: the smoothed answer of ``model`` over the last seconds,
    large, and the last window's own answer."""
    if not updates:
        return "### Listening… (the first answer comes after one window of audio)"
    last = updates[-1]
    if last.smoothed is None:
        text = "## No speech heard in the last seconds"
    else:
        s = last.smoothed[model]
        text = f"## {MODEL_NAMES[model]}: **{s.emotion}** ({s.probability:.2f})"
    now = "no speech" if last.scores is None else last.scores[model].emotion
    if last.scores is not None:
        now += f" ({last.scores[model].probability:.2f})"
    return text + f"\n\n{last.start:.1f}–{last.end:.1f} s: {now}"


def summary_text(summary: Summary, model: str) -> str:
    """The end of a live session in Markdown: ``model``'s mean answer over the windows with
    speech (the summary ``ser-cnn listen`` prints at Ctrl-C)."""
    heard = f"{summary.duration:.0f} s, {summary.speech_windows} of {summary.windows} windows"
    if summary.scores is None:
        return f"### Session over: no speech heard ({heard})"
    s = summary.scores[model]
    return (
        f"### Session over: {MODEL_NAMES[model]} heard **{s.emotion}** ({s.probability:.2f}) "
        f"over the windows with speech ({heard} with speech)"
    )


def windows_html(updates: list[Update], model: str, labels: tuple[str, ...]) -> str:
    """Each window's emotion from ``model`` as a strip of cells, paler where less sure, grey
    without speech; each cell carries its times, emotion and probability as ``data-`` attributes.
    """
    colors = emotion_colors(labels)
    cells = []
    for u in updates:
        if u.scores is None:
            cells.append(
                f'<i data-start="{u.start:.2f}" data-end="{u.end:.2f}" data-emotion="" '
                f'style="background:#dddddd" title="{u.start:.1f} s: no speech"></i>'
            )
            continue
        s = u.scores[model]
        cells.append(
            f'<i data-start="{u.start:.2f}" data-end="{u.end:.2f}" data-emotion="{s.emotion}" '
            f'data-p="{s.probability:.4f}" style="background:{colors[s.emotion]};'
            f'opacity:{0.35 + 0.65 * s.probability:.2f}" '
            f'title="{u.start:.1f} s: {s.emotion} ({s.probability:.2f})"></i>'
        )
    return f'<div class="windows">{"".join(cells)}</div>'


def build_app(
    rec,
    limits: Limits = Limits(),
    *,
    workers: int = DEFAULT_WORKERS,
    live: int = DEFAULT_LIVE,
    hop: float = HOP,
):
    """The Gradio Blocks of the app around a loaded Recognizer (not launched).

    ``workers`` uploads are analysed at a time; the others wait in the queue of :func:`launch`.
    The Live tab serves ``live`` microphones at a time, apart from the uploads (its own
    concurrency group, so streams never hold an upload back), an answer every ``hop`` seconds.
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio reads it on import
    import gradio as gr

    if rec.speaker_normalized:
        raise ParameterError(
            f"{rec.run_dir}: this model needs several recordings of one speaker "
            "(speaker-normalised); the app judges every recording alone"
        )
    if workers < 1 or live < 1:
        raise ParameterError(f"workers and live must be at least 1, got {workers} and {live}")
    first = rec.models[0]

    def cleared(error: str = ""):
        return (
            gr.update(value=error, visible=bool(error)),
            "",
            "",
            gr.update(value=None, visible=False),
            gr.update(value=None, visible=False),
        )

    def analyse_upload(path):
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
        return (
            gr.update(value="", visible=False),
            verdict_text(p),
            probability_html(p, rec.labels),
            gr.update(
                value=None if result.log_mel is None else log_mel_image(result.log_mel),
                label=result.log_mel_caption,
                visible=result.log_mel is not None,
            ),
            gr.update(
                value=timeline_frame(p.windows, first, rec.labels) if p.windows else None,
                visible=bool(p.windows),
            ),
        )

    def live_start():
        return live_text([], first), "", None, LiveSession(LiveStream(rec, hop=hop), [])

    def live_update(chunk, session):
        if chunk is None:
            return gr.skip(), gr.skip(), gr.skip(), session
        if session is None:  # a chunk came before the start event's answer
            session = LiveSession(LiveStream(rec, hop=hop), [])
        sr, samples = chunk
        try:
            session.updates += session.stream.push(samples, sr)
        except SerError as err:
            return f"**Cannot listen:** {err}", gr.skip(), gr.skip(), session
        if not session.updates:
            return live_text([], first), gr.skip(), gr.skip(), session
        shown = [u for u in session.updates if u.end > session.updates[-1].end - LIVE_SHOWN]
        return (
            live_text(session.updates, first),
            windows_html(shown, first, rec.labels),
            timeline_frame((u.window for u in shown), first, rec.labels),
            session,
        )

    def live_stop(session):
        if session is None:  # stopped before any audio
            return gr.skip(), None
        summary = session.stream.close()
        session.updates += summary.last
        return summary_text(summary, first), None

    intro = (
        "# ser_cnn: which emotion is in this voice?\n"
        "Upload a recording or record one with your microphone. It tells apart "
        f"{', '.join(rec.labels)}, {learnt_from(rec)}: treat results on "
        "other recordings with care. Files up to "
        f"{limits.max_mb:g} MB and {limits.max_minutes:g} minutes; recordings over "
        f"{2 * rec.window:g} s are cut into {rec.window:g} s windows. When many people use it "
        "at once, your place in the queue shows while you wait."
    )
    with gr.Blocks(title="ser_cnn", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(intro)
        with gr.Tab("Recording", id="recording_tab"):
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
                    bars = gr.HTML(label="every emotion's probability", elem_id="bars")
            log_mel = gr.Image(
                label="the CNN's input",
                format="png",
                interactive=False,
                visible=False,
                buttons=[],
                elem_id="log_mel",
            )
            timeline = gr.LinePlot(
                visible=False, elem_id="timeline", **timeline_plot(first, rec.labels)
            )
        with gr.Tab("Live", id="live_tab"):
            gr.Markdown(
                f"Speak, and the {MODEL_NAMES[first]} answers every {hop:g} s for the last "
                f"{rec.window:g} s of audio; the large answer averages the windows with speech "
                f"of the last few seconds. Sessions last up to {LIVE_LIMIT // 60} minutes; "
                f"{live} can listen at once, others wait in the queue."
            )
            live_audio = gr.Audio(
                sources=["microphone"],
                streaming=True,
                type="numpy",
                label="microphone",
                elem_id="live_mic",
            )
            live_now = gr.Markdown(elem_id="live_now")
            live_windows = gr.HTML(elem_id="live_windows")
            live_timeline = gr.LinePlot(elem_id="live_timeline", **timeline_plot(first, rec.labels))
            session = gr.State(time_to_live=2 * LIVE_LIMIT)
        audio.change(
            analyse_upload,
            audio,
            [error, verdict, bars, log_mel, timeline],
            api_name="analyse",
            show_progress="full",
            show_progress_on=[verdict],
            concurrency_limit=workers,
            concurrency_id="analyse",
        )
        live_outputs = [live_now, live_windows, live_timeline, session]
        live_audio.start_recording(live_start, None, live_outputs, api_name=False, queue=False)
        live_audio.stop_recording(
            live_stop, session, [live_now, session], api_name="live_stop", queue=False
        )
        live_audio.stream(
            live_update,
            [live_audio, session],
            live_outputs,
            api_name="live",
            stream_every=LIVE_CHUNK,
            time_limit=LIVE_LIMIT,
            show_progress="hidden",
            concurrency_limit=live,
            concurrency_id="live",
        )
    return demo


def launch(
    demo,
    limits: Limits = Limits(),
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    queue: int = DEFAULT_QUEUE,
):
    """Serve ``demo`` until interrupted: offline, no share link, no tracebacks shown; at most
    ``queue`` requests wait (the page shows each its place), newcomers beyond are refused."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    if queue < 1:
        raise ParameterError(f"queue must be at least 1, got {queue}")
    theme = gr.themes.Default(font=list(SYSTEM_FONTS), font_mono=list(MONO_FONTS))
    demo.queue(max_size=queue)
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
        css="#error p, #error strong { color: #b42318; }" + PROBABILITY_CSS,
        quiet=True,
        prevent_thread_lock=True,
    )
    print(f"ser_cnn app: {url} (Ctrl+C stops it)", flush=True)
    demo.block_thread()
