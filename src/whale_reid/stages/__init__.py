"""One module per DVC stage, named as the stage: `pipelines/<stage>.py` calls `whale_reid.stages.<stage>`."""
