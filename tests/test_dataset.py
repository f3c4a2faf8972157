"""The full RAVDESS speech set (needs RAVDESS_DIR; skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest

from ser_cnn.features.cache import load_cache, preprocess
from ser_cnn.features.logmel import log_mel
from ser_cnn.ravdess import EMOTIONS
from tests.conftest import WAV_SAMPLES

pytestmark = [pytest.mark.dataset, pytest.mark.slow]


def test_full_set_preprocesses_to_1440_arrays_of_one_shape(ravdess_dir, tmp_path):
    summary = preprocess(ravdess_dir, tmp_path / "cache", progress=False)
    assert summary.total == 1440 and not summary.errors
    manifest, features, config = load_cache(tmp_path / "cache")
    assert features.shape == (1440, *config.shape)
    assert np.isfinite(features).all()
    assert manifest["actor"].nunique() == 24
    counts = manifest["emotion"].value_counts().to_dict()
    assert counts == {e: (96 if e == "neutral" else 192) for e in EMOTIONS}
    assert manifest["duration"].between(2.9, 5.3).all()


@pytest.mark.parametrize("wav", sorted(p.name for p in WAV_SAMPLES.glob("*.wav")) or ["none"])
def test_original_wav_and_flac_copy_give_the_same_features(ravdess_dir, wav):
    if wav == "none":
        pytest.skip("no original WAV samples beside the checkout")
    actor = wav.rsplit("-", 1)[1].removesuffix(".wav")
    flac = ravdess_dir / f"Actor_{actor}" / wav.replace(".wav", ".flac")
    np.testing.assert_array_equal(log_mel(WAV_SAMPLES / wav), log_mel(flac))
