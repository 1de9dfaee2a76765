"""Identifying new photos against a pipeline's gallery: artefacts, queries, the MLflow model."""
