"""Tasks of the models stage."""
