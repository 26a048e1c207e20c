"""Evaluation: retrieval metrics, the evaluation protocols and output files, plots."""
