"""Input lists: parse edit-pair and caption JSON / JSON Lines into typed samples."""

from revise_prep.inputs.loader import EntryProblem, load_samples, parse_entries
from revise_prep.inputs.samples import Sample

__all__ = ["EntryProblem", "Sample", "load_samples", "parse_entries"]
