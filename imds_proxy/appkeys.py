"""Typed web.AppKey declarations shared by the wiring and the handlers."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from imds_proxy.config import Config
from imds_proxy.credentials import Clock
from imds_proxy.refresh import CredentialEngine
from imds_proxy.tokens import TokenIssuer

CONFIG = web.AppKey("config", Config)
ENGINE = web.AppKey("engine", CredentialEngine)
TOKENS = web.AppKey("tokens", TokenIssuer)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
STARTED = web.AppKey("started", datetime)
#: The role the IMDS paths serve (SDKs read only the first line of the role listing).
IMDS_ROLE = web.AppKey("imds_role", str)
