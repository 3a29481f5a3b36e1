"""Data stage: read the raw extracts, check them, and build the city panel."""
