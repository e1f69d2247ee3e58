"""Dagster definitions over point3_pipeline: the library does the work, these call it."""
