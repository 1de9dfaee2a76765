"""MLflow's models-from-code entry for the ensemble: `log_ensemble_model` logs this file as the model's code.

MLflow runs it when the model is loaded, so the logged model holds source, not a pickled object (nothing is
deserialised from the artifact store); the code itself lives in `whale_reid.identify.mlflow_model`.
"""

from mlflow.models import set_model

from whale_reid.identify.mlflow_model import EnsembleModel

set_model(EnsembleModel())
