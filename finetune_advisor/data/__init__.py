"""Reading, profiling and sampling image-classification datasets (the pipeline's first stage).

Three layouts are read into one :class:`Dataset` (a sorted list of :class:`Item` s):

* ``"folders"``: ImageFolder, ``root/<class>/x.jpg``, optionally split as
  ``root/train/<class>/x.jpg`` and ``root/valid/<class>/x.jpg`` (``val``/``validation`` too);
* ``"csv"``: a CSV of ``image,labels`` rows (multi-label when a row names several labels);
* ``"filename"``: the label is part of the file name, ``root/images/<label>_<n>.jpg``.

:func:`profile_dataset` then summarises a dataset from image *headers* only (no pixels are
decoded), :func:`load_image` decodes one image to RGB for training and embedding, and
:func:`stratified_indices` draws the one seeded, class-stratified sample.

Modules: ``model`` (Item, Dataset, DatasetProfile), ``read`` (read_dataset, layout detection),
``layouts`` (one reader per layout), ``scan`` (folder listing, skips, scan_class_folders),
``splits`` (split names), ``images`` (headers, decoding), ``profile``, ``sampling``.

>>> import tempfile
>>> from finetune_advisor.testing import make_folder_dataset
>>> root = make_folder_dataset(tempfile.mkdtemp(), counts={"cat": 2, "dog": 4})
>>> ds = read_dataset(root)
>>> ds.layout, ds.classes, len(ds)
('folders', ('cat', 'dog'), 6)
>>> profile_dataset(ds).imbalance_sd
1.0
"""
from .images import IMAGE_EXTENSIONS, TOO_LARGE_IMAGE, UNDECODABLE_IMAGE, UNREADABLE_IMAGE, load_image
from .layouts import PETS_REGEX
from .model import Dataset, DatasetProfile, Item, format_skips
from .profile import add_decode_failures, profile_dataset
from .read import LAYOUTS, read_dataset
from .sampling import stratified_indices
from .scan import scan_class_folders
from .splits import SPLIT_NAMES, TEST_SPLITS, VALID_SPLITS

__all__ = [
    "Item", "Dataset", "DatasetProfile", "read_dataset", "profile_dataset", "add_decode_failures",
    "load_image", "stratified_indices", "scan_class_folders", "format_skips",
    "IMAGE_EXTENSIONS", "LAYOUTS", "PETS_REGEX", "SPLIT_NAMES", "VALID_SPLITS", "TEST_SPLITS",
    "UNREADABLE_IMAGE", "TOO_LARGE_IMAGE", "UNDECODABLE_IMAGE",
]
