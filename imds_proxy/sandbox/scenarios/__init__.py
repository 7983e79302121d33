"""Sandbox scenarios: the model of a small AWS world, its TOML files (sections, typed values),
and the built-in scenario files."""
