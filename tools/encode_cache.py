"""Encode corpora with the frozen Whisper encoder into one cache (clips and degraded copies).

    python tools/encode_cache.py --data $RAVDESS_DIR --out data/encoder/ravdess --copies 2
    python tools/encode_cache.py --data $URDU_DIR --data $ASED_DIR --out data/encoder/other
    python tools/encode_cache.py --data $RAVDESS_DIR --out data/encoder/ravdess_base \
        --weights /tmp/whisper_base/model.bin     # another Whisper's weights (trials)
    python tools/encode_cache.py --data $RAVDESS_DIR --out data/encoder/ravdess_noisy \
        --copies 4 --noisy 2      # copies 3, 4 always noisy: a noise-gated recipe's cache
    python tools/encode_cache.py ... --copies 4 --noise-p 1 --snr 0 20 --from-copy 3  # the same
    python tools/encode_cache.py ... --copies 4 --speed-p 1 --from-copy 3  # 3, 4: other voices
    python tools/encode_cache.py ... --copies 4 --noisy 2 --front-end RECIPE.toml  # as served

Inputs are anything the corpus layer reads (``ser_cnn.corpora``). Babble in a RAVDESS clip's
copies comes from the actors tested in the same published fold, so no fold ever trains on a
test actor's voice, not even as background; other corpora take other speakers of their own.
Resumable: run it again after an interruption and it encodes only what is missing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from ser_cnn.audio.front_end import FrontEnd
from ser_cnn.corpora import load_many
from ser_cnn.encoder.cache import build_cache, fold_group_pool, noisy_chain
from ser_cnn.encoder.light import LightEncoder
from ser_cnn.encoder.whisper import load_encoder
from ser_cnn.features.logmel import WhisperFeatureConfig
from ser_cnn.ravdess import load_folds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", action="append", required=True, help="a corpus, table or folder")
    p.add_argument("--out", type=Path, required=True, help="the cache folder")
    p.add_argument("--copies", type=int, default=2, help="degraded copies per clip (2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the copies' draws (0)")
    p.add_argument(
        "--weights",
        type=Path,
        help="a CTranslate2 Whisper model.bin (or its folder) instead of the pinned package: "
        "encoded by the NumPy encoder, the cache names the file's sha256",
    )
    p.add_argument(
        "--noise-p",
        type=float,
        help="probability of added noise in a copy (the training chain's default otherwise)",
    )
    p.add_argument("--snr", type=float, nargs=2, metavar=("LO", "HI"), help="its SNR range, dB")
    p.add_argument(
        "--speed-p",
        type=float,
        help="probability of a speed change in a copy, the talker's pitch and formants with it "
        "(the training chain's default otherwise)",
    )
    p.add_argument(
        "--from-copy",
        type=int,
        default=1,
        help="--noise-p, --snr and --speed-p for copies from this one on (1: all; the others "
        "as default)",
    )
    p.add_argument(
        "--noisy",
        type=int,
        default=0,
        help="the last N copies always noisy, as a noise-gated recipe's noisy_copies = N "
        "(ser_cnn.encoder.cache.NOISY_CHAIN); instead of --noise-p, --snr and --from-copy",
    )
    p.add_argument(
        "--front-end",
        type=Path,
        metavar="RECIPE",
        help="every version (as recorded and each copy) through the front end of an encoder "
        "recipe (its [denoise] and [dereverb] tables) before its log-mel, as a run with that "
        "front end hears it when served",
    )
    args = p.parse_args(argv)
    if args.noisy and (
        args.noise_p is not None or args.snr or args.speed_p is not None or args.from_copy > 1
    ):
        p.error(
            "--noisy sets its copies' chain: leave out --noise-p, --snr, --speed-p, --from-copy"
        )
    chain = {}  # the copies' chain where it differs from the default (recorded in the cache)
    for kind, value in (("noise", args.noise_p), ("speed", args.speed_p)):
        if value is not None:
            chain.setdefault("p", {})[kind] = value
    if args.snr is not None:
        chain["snr_range"] = list(args.snr)
    if chain and args.from_copy > 1:
        chain["from_copy"] = args.from_copy
    manifest, problems = load_many(args.data)
    for line in problems:
        print(f"left out: {line}", file=sys.stderr)
    started = time.perf_counter()
    # NumPy's BLAS would fight TensorFlow's threads; the NumPy encoder (--weights) needs them
    with threadpool_limits(limits=1 if args.weights is None else None):
        build_cache(
            manifest,
            args.out,
            encoder=load_encoder() if args.weights is None else LightEncoder.load(args.weights),
            feature_config=WhisperFeatureConfig(),
            copies=args.copies,
            seed=args.seed,
            babble_pool=fold_group_pool(load_folds()),
            chain=noisy_chain(args.copies, args.noisy) if args.noisy else chain or None,
            front_end=None if args.front_end is None else FrontEnd.from_recipe(args.front_end),
        )
    print(f"{args.out}: {len(manifest)} clips in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
