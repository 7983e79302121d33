#!/bin/sh
# The documented install (docs/host.md): imds-proxy in a venv at /opt/imds-proxy (Debian's pip
# refuses a system-wide install), the units in /etc/systemd/system. Run as root from a checkout:
#   sudo systemd/install.sh [--wheels DIR]
# --wheels DIR installs offline from a wheelhouse (`make test` builds .venv/wheelhouse).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/imds-proxy  # the units' ExecStart
units=${IMDS_PROXY_UNIT_DIR:-/etc/systemd/system}
wheels=""
[ "${1:-}" = "--wheels" ] && wheels=$2
[ -x "$prefix/bin/python" ] || /usr/bin/python3 -m venv "$prefix"
if [ -n "$wheels" ]; then
  "$prefix/bin/pip" install --quiet --no-index -f "$wheels" "$here"
else
  "$prefix/bin/pip" install --quiet "$here"
fi
install -m 0644 "$here"/systemd/imds-proxy.service "$here"/systemd/imds-proxy.socket \
  "$here"/systemd/imds-proxy-address.service "$units"/
echo "installed $prefix/bin/imds-proxy and the units; next: write /etc/imds-proxy/config.toml, then"
echo "  systemctl daemon-reload && systemctl enable --now imds-proxy-address.service imds-proxy.socket imds-proxy.service"
