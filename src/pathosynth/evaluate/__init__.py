"""Evaluation: image-set metrics, downstream experiments and the statistics behind their reports."""
