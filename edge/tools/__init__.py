"""Developer tools run from the Makefile (firmware bundles)."""
