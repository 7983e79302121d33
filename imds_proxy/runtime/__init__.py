"""The daemon (sockets, sd_notify, signals; it owns the one credential engine), socket activation,
exec's runner, the shell/child environment, control socket and controller, MFA watcher, logging,
the health probe (stdlib only), what shadows IMDS in a shell, the metadata address (iproute2) and
the nftables redirect."""
