"""The old import path of the MLflow model class, kept so that models registered before the move still load."""

from whale_reid.identify.mlflow_model import *  # noqa: F403
