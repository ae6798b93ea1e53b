"""Models exported before the learner package existed name their transforms by the old path."""
import pickle

import pytest


@pytest.mark.parametrize("name", ["LoadRGB", "GaussianNoise", "first_label", "all_labels"])
def test_old_pickled_names_still_resolve(name):
    from finetune_advisor.learner import dataloaders, transforms

    old = pickle.loads(f"cfinetune_advisor.train\n{name}\n.".encode())   # a GLOBAL opcode, as model.pkl has
    assert old is getattr(transforms, name, None) or old is getattr(dataloaders, name)
