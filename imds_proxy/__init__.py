"""imds-proxy: IMDSv2 and container credentials for unmodified AWS SDKs, on any host."""

__version__ = "0.1.0"
