"""Tasks of the run stage."""
