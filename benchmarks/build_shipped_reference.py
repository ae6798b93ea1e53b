"""Build the similarity reference shipped in the package.

Tiny-ImageNet (train split of the shared sample, 100 images per class) embedded with the
offline EfficientNet-Lite0 backbone at the method's defaults (128 px, 20 images per class),
written to ``finetune_advisor/resources/reference_efficientnet_lite0_128px_k20.npz``.

Usage::

    python benchmarks/build_shipped_reference.py [--data PATH] [--out PATH]

``--data`` defaults to ``$FINETUNE_ADVISOR_SHARED_DATA/tiny-imagenet-200`` (shared data
default: ``<repo>/../shared/data``).
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from finetune_advisor.backbones import create_backbone
from finetune_advisor.similarity import (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGES_PER_CLASS, Reference,
                                         build_reference, reference_filename)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FINETUNE_ADVISOR_SHARED_DATA", REPO.parent / "shared" / "data"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "tiny-imagenet-200")
    parser.add_argument("--out", type=Path, default=REPO / "finetune_advisor" / "resources"
                        / reference_filename("efficientnet_lite0", DEFAULT_IMAGE_SIZE, DEFAULT_IMAGES_PER_CLASS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    t0 = time.perf_counter()
    backbone = create_backbone("efficientnet_lite0")
    t1 = time.perf_counter()
    ref = build_reference(args.data, backbone, image_size=DEFAULT_IMAGE_SIZE,
                          images_per_class=DEFAULT_IMAGES_PER_CLASS, split="train", seed=args.seed)
    t2 = time.perf_counter()
    # the shipped file says where it came from, not where this machine keeps the data
    ref.source = f"tiny-imagenet-200/train (shared sample, {int(ref.class_counts.sum())} images), seed {args.seed}"
    ref.save(args.out)
    back = Reference.load(args.out)
    assert back.class_means.shape == ref.class_means.shape
    n_img = ref.n_classes * ref.images_per_class
    print(f"backbone load   {t1 - t0:6.1f} s")
    print(f"embed + means   {t2 - t1:6.1f} s  ({n_img} images, {n_img / (t2 - t1):.0f} img/s)")
    print(f"classes         {ref.n_classes}, features {ref.class_means.shape[1]}, "
          f"means {ref.class_means.dtype}")
    print(f"wrote           {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
