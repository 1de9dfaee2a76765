"""The photos and tables a run starts from: Kaggle layout, own catalogues, folds, encounters, crops."""
