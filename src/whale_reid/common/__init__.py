"""Shared by every layer: params and profiles, MLflow tracking, plots, HTML helpers."""
