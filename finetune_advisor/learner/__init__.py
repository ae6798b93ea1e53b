"""What the LR range test and training share: fastai DataLoaders for a Dataset and a Learner (body
split into parameter groups, a head that starts at the label priors), built from a
:class:`LearnerSpec` or a Config. fastai loads only when something is built."""
from .dataloaders import build_dataloaders
from .model import build_learner, label_priors, prior_output_layer, split_body_head
from .spec import LearnerSpec

__all__ = ["LearnerSpec", "build_dataloaders", "build_learner", "split_body_head", "label_priors",
           "prior_output_layer"]
