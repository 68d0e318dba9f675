"""Tasks of the evaluation stage."""
