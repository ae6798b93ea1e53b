"""The report's figures: the similarity strip's reference datasets and their labels."""
from __future__ import annotations

from finetune_advisor.report.figures import spread_labels
from finetune_advisor.study import TABLE2_SIMILARITY as REFERENCE_DATASETS


def test_similarity_strip_marks_the_reference_datasets():
    assert REFERENCE_DATASETS == {"Amazon": 0.817, "Cancer": 0.604, "DOTA": 0.829, "Draw": 0.581,
                                  "Pets": 0.702, "Protein": 0.819, "X-Ray": 0.813}
    xs = sorted(REFERENCE_DATASETS.values())
    pos = spread_labels(xs, gap=0.062, lo=0.03, hi=0.97)
    assert all(b - a >= 0.062 - 1e-9 for a, b in zip(pos, pos[1:])) and 0.03 <= pos[0] and pos[-1] <= 0.97
