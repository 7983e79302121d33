"""The parser and main(); one module per sub-command (serve, sandbox, exec, env, healthcheck,
doctor, control = mfa and roles), shared option helpers (common)."""


from imds_proxy.cli.parser import main

__all__ = ["main"]
