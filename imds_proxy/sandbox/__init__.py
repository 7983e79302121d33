"""The local AWS (moto), IAM enforcement, scenarios (model, file, sections, values, built-in
files)."""
