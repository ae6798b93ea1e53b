"""similarity/embed.py: the embedding equals decoding, normalising and pooling by hand."""
from __future__ import annotations

import numpy as np

from finetune_advisor import similarity as S


def test_embed_images_matches_manual_pipeline(tmp_path, resnet18, noisy):
    import torch
    from PIL import Image
    paths = [noisy(tmp_path / f"{i}.png", seed=i, size=20 + 3 * i) for i in range(5)]
    emb, failed = S.embed_images(resnet18, paths, image_size=32, batch_size=2, progress=False)
    assert failed == [] and emb.shape == (5, 512) and emb.dtype == np.float32
    arr = np.stack([np.asarray(Image.open(p).convert("RGB").resize((32, 32), Image.BILINEAR)) for p in paths])
    x = (torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255 - torch.tensor(resnet18.mean).view(1, 3, 1, 1)) \
        / torch.tensor(resnet18.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        expected = resnet18.features(x.contiguous()).numpy()
    np.testing.assert_allclose(emb, expected, rtol=1e-4, atol=1e-4)
