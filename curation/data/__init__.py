"""Demo and ground-truth data sets built from what ships with Python and the project's dependencies."""
