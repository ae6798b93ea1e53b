"""The readers of the three dataset layouts: class folders, a labels CSV, labels in file names."""
from .csv_labels import IMAGE_COLUMNS, LABEL_COLUMNS, find_csvs, pick_csv, read_csv
from .filenames import NO_MATCH, PETS_REGEX, compile_regex, read_filename
from .folders import read_folders

__all__ = ["IMAGE_COLUMNS", "LABEL_COLUMNS", "NO_MATCH", "PETS_REGEX", "compile_regex", "find_csvs",
           "pick_csv", "read_csv", "read_filename", "read_folders"]
