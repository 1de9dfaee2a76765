"""Pages people read: the review pages of an identify run and the pipeline's report."""
