"""The parser and main(); one module per sub-command (serve, sandbox, exec, env, healthcheck,
doctor, address, redirect, node-agent, control = mfa and roles), the shared option tables (options)
and helpers (common)."""


from imds_proxy.cli.parser import main

__all__ = ["main"]
