"""DVC stage scripts: one thin module per stage (params → package calls → files + MLflow).

Run a stage as `python -m pipelines.<stage>`; `dvc.yaml` does exactly that.
"""
