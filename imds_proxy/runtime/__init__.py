"""The daemon (sockets, sd_notify, signals; it owns the one credential engine), exec's runner, the
shell/child environment, control socket and controller, MFA watcher, logging, the health probe
(stdlib only), what shadows IMDS in a shell."""
