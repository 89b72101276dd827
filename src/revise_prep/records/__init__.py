"""Records: the exact keys training reads, safe (de)serialisation, names, list files and reports."""

from revise_prep.records.reader import as_training_sample, iter_dataset, load_record, load_training_sample
from revise_prep.records.safe_pickle import UnsafePickleError, safe_load
from revise_prep.records.sampler import BucketBatchSampler, RecordDataset

__all__ = ["BucketBatchSampler", "RecordDataset", "UnsafePickleError", "as_training_sample", "iter_dataset",
           "load_record", "load_training_sample", "safe_load"]
