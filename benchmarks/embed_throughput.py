"""Similarity-pass throughput against the raw backbone forward, side by side in one run.

For each backbone and image size: ``raw`` = images/s of ``backbone.features`` on already-decoded,
already-normalised float tensors (NCHW contiguous, eval, ``inference_mode``, the same batch
size); ``embed`` = images/s of :func:`finetune_advisor.similarity.embed_images` on the JPEG files
(decode with draft scaling, squash-resize, normalise, forward). Goal: embed / raw >= 0.80.
The two are alternated ``--repeats`` times and the medians compared, so background load hits
both alike. Only ratios are meaningful on a shared machine.

Images: real JPEGs from shared/data/pets-oxford/images (up to 320 px) and
tiny-imagenet-200/val (64 px), interleaved.

    python benchmarks/embed_throughput.py --quick          # fewer images, 1 repeat
    python benchmarks/embed_throughput.py                  # 3 repeats
    python benchmarks/embed_throughput.py --backbones resnet50 --sizes 224 --images 32 --profile

Backbones: resnet18 / resnet34 (torchvision, random init: speed only), resnet50 (the real
ResNet-50 of shared/tools/pretrained), efficientnet_lite0 (the shipped real one).
``--profile`` prints the top of a cProfile of one embed pass per row.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
RESNET50 = f"{SHARED}/tools/pretrained/resnet50_keras_v1.py:resnet50_keras_v1"
# rough images/s on 2 cores at 224 px, to size the image count per row (~budget seconds per pass)
SPEED_224 = {"resnet18": 45, "resnet34": 25, "resnet50": 10, "efficientnet_lite0": 40}


def make_backbone(name: str):
    from finetune_advisor.backbones import create_backbone
    if name == "resnet50":
        return create_backbone(RESNET50)
    if name in ("resnet18", "resnet34"):
        return create_backbone(name, pretrained=False)
    return create_backbone(name)


def image_paths(data: Path, n: int) -> list[str]:
    pets = sorted((data / "pets-oxford" / "images").glob("*.jpg"))
    tiny = sorted((data / "tiny-imagenet-200" / "val").glob("*/*.JPEG"))
    out = []
    for a, b in zip(pets, tiny[::7]):
        out += [str(a), str(b)]
    return out[:n]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED / "data"))
    p.add_argument("--backbones", nargs="+", default=["resnet18", "resnet34", "resnet50", "efficientnet_lite0"])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224])
    p.add_argument("--budget", type=float, default=4.0, help="target seconds per pass (sets the image count)")
    p.add_argument("--images", type=int, help="fixed image count per row (overrides --budget)")
    p.add_argument("--batch-size", type=int, default=0, help="0: embed_images' default")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="budget 2 s, 1 repeat")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--profile", action="store_true", help="cProfile one embed pass per row")
    p.add_argument("--csv", help="also write the table here")
    args = p.parse_args(argv)
    if args.quick:
        args.budget, args.repeats = 2.0, 1
    logging.basicConfig(level=logging.ERROR)

    import numpy as np
    import pandas as pd
    import torch

    from finetune_advisor.similarity.embed import CHANNELS_LAST_MIN_SIZE, DEFAULT_BATCH_SIZE, decode_image, embed_images

    if args.threads:
        torch.set_num_threads(args.threads)
    bs = args.batch_size or DEFAULT_BATCH_SIZE
    rows = []
    for name in args.backbones:
        bb = make_backbone(name)
        bb.body.eval()
        for size in args.sizes:
            if args.images:
                n = args.images
            else:
                rate = SPEED_224.get(name, 20) * (224 / size) ** 2
                n = int(np.clip(round(args.budget * rate / bs) * bs, bs, 2048))
            paths = image_paths(Path(args.data), n)
            n = len(paths)
            arrs = np.stack([decode_image(pth, size) for pth in paths])
            mean = torch.tensor([255.0 * m for m in bb.mean]).view(1, 3, 1, 1)
            std = torch.tensor([255.0 * s for s in bb.std]).view(1, 3, 1, 1)
            x_all = (torch.from_numpy(arrs).permute(0, 3, 1, 2).float() - mean) / std
            # the same memory layout embed_images feeds the network (channels_last from 160 px)
            x_all = x_all.contiguous(memory_format=torch.channels_last if size >= CHANNELS_LAST_MIN_SIZE
                                     else torch.contiguous_format)

            def raw():
                with torch.inference_mode():
                    for s in range(0, n, bs):
                        bb.features(x_all[s:s + bs])

            def emb():
                embed_images(bb, paths, image_size=size, batch_size=bs, progress=False)

            with torch.inference_mode():  # warm-up (allocator, oneDNN primitives)
                bb.features(x_all[:bs])
            embed_images(bb, paths[:bs], image_size=size, batch_size=bs, progress=False)
            t_raw, t_emb = [], []
            for _ in range(args.repeats):
                c = time.perf_counter(); raw(); t_raw.append(time.perf_counter() - c)
                c = time.perf_counter(); emb(); t_emb.append(time.perf_counter() - c)
            # decode alone (single thread), to see what the prefetch has to hide
            c = time.perf_counter()
            for pth in paths:
                decode_image(pth, size)
            t_dec = time.perf_counter() - c
            r_raw, r_emb = n / float(np.median(t_raw)), n / float(np.median(t_emb))
            rows.append({"backbone": name, "px": size, "images": n, "batch": bs,
                         "raw img/s": r_raw, "embed img/s": r_emb, "ratio": r_emb / r_raw,
                         "decode-only img/s (1 thread)": n / t_dec, "goal >=0.8": "met" if r_emb / r_raw >= 0.8 else "MISSED"})
            print(f"  {name} {size}px n={n}: raw {r_raw:.1f} img/s, embed {r_emb:.1f} img/s, ratio {r_emb / r_raw:.2f}",
                  flush=True)
            if args.profile:
                import cProfile
                import pstats
                pr = cProfile.Profile()
                pr.enable(); emb(); pr.disable()
                pstats.Stats(pr).sort_stats("tottime").print_stats(8)
    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.2f}".format):
        print(df.to_string(index=False))
    print(f"torch threads {torch.get_num_threads()}; ratio min {df['ratio'].min():.2f}, median {df['ratio'].median():.2f}")
    if args.csv:
        df.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
