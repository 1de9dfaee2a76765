"""From embeddings to answers: ensembles, head scores, region fusion, local verification, restrictions."""
