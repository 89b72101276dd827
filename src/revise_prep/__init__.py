"""revise-prep: training-data preparation for Wan2.1-based video-editing models (ReViSE)."""

__version__ = "0.1.0"

#: Version of the record ``meta`` layout written by this package.
FORMAT_VERSION = 1
