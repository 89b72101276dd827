"""Records: the exact keys training reads, safe (de)serialisation, names, list files and reports."""

from revise_prep.records.reader import as_training_sample, iter_dataset, load_record
from revise_prep.records.safe_pickle import UnsafePickleError, safe_load

__all__ = ["UnsafePickleError", "as_training_sample", "iter_dataset", "load_record", "safe_load"]
