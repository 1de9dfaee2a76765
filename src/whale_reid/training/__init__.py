"""Training the embedder's CV folds: fold jobs, their MLflow records, extra-region embeddings."""
