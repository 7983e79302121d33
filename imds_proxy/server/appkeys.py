"""Typed web.AppKey declarations shared by the wiring and the handlers."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from imds_proxy.config import Config
from imds_proxy.config.listeners import Listener
from imds_proxy.engine.credentials import Clock
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.engine.tokens import TokenIssuer

CONFIG = web.AppKey("config", Config)
ENGINE = web.AppKey("engine", CredentialEngine)
TOKENS = web.AppKey("tokens", TokenIssuer)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
STARTED = web.AppKey("started", datetime)
#: The listener this app serves: its role (SDKs read only the first line of the role
#: listing, so one listener serves one role over IMDS), channels and client policy.
LISTENER = web.AppKey("listener", Listener)
