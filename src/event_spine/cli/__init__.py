"""The `spine` command line."""
