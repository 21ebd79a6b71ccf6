"""One module per HTTP endpoint."""
