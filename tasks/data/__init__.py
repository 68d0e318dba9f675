"""Tasks of the data stage."""
