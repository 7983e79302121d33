# syntax=docker/dockerfile:1
# imds-proxy as a sidecar (recipes: docs/sidecars.md).
#
#   docker build -t imds-proxy .
#   docker run --rm -v "$PWD/imds-proxy.toml:/etc/imds-proxy/config.toml:ro" \
#     -v "$HOME/.aws:/etc/imds-proxy/aws:ro" --user "$(id -u):$(id -g)" imds-proxy
#
# Config and source credentials are mounted at run time, never built in: the build context
# is an allow-list (.dockerignore) of the package sources only.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY imds_proxy ./imds_proxy
COPY docker/install.sh ./docker/install.sh
# The same script tests/test_docker.py runs. No pip cache in the layer.
RUN PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 sh docker/install.sh /src /opt/imds-proxy

FROM ${PYTHON_IMAGE}
# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can check it, volumes can be owned by it.
RUN groupadd --system --gid 10001 imds-proxy \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin imds-proxy
COPY --from=build /opt/imds-proxy /opt/imds-proxy
ENV PATH=/opt/imds-proxy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IMDS_PROXY_CONFIG=/etc/imds-proxy/config.toml \
    AWS_CONFIG_FILE=/etc/imds-proxy/aws/config \
    AWS_SHARED_CREDENTIALS_FILE=/etc/imds-proxy/aws/credentials
USER 10001:10001
EXPOSE 8169
# Slim images have no curl: the probe is our own sub-command (IMDSv2 on loopback, stdlib only).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["imds-proxy", "healthcheck"]
ENTRYPOINT ["imds-proxy"]
CMD ["serve"]
