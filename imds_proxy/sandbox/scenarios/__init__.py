"""Sandbox scenarios: the model of a small AWS world, its TOML files (sections, typed values),
and the built-in scenario files."""

#: The scenario `sandbox`, `exec --sandbox` and `doctor --sandbox` build when none is named (here,
#: not in file.py, so the command line's parser has it without loading the scenario reader).
DEFAULT_SCENARIO = "photos"
