#!/bin/sh
# Install imds-proxy from a source tree into a new virtual environment:
#
#   sh docker/install.sh SOURCE_DIR VENV_DIR
#
# The Dockerfile's build stage runs exactly this, and tests/test_docker.py runs it into a
# temporary directory, so the image's install steps are exercised where Docker cannot run.
set -eu
src=$1
venv=$2

python3 -m venv "$venv"
"$venv/bin/pip" install --quiet "$src"
# The image has no use for a package manager at run time.
"$venv/bin/pip" uninstall --quiet --yes pip
# A broken install fails the build, not the first container started from it.
"$venv/bin/imds-proxy" --version
"$venv/bin/imds-proxy" healthcheck --help >/dev/null
