"""Typed web.AppKey declarations shared by the wiring and the handlers."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from imds_proxy.engine.credentials import Clock
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.engine.tokens import TokenIssuer
from imds_proxy.server.live import Live
from imds_proxy.server.observe import RequestObserver

ENGINE = web.AppKey("engine", CredentialEngine)
TOKENS = web.AppKey("tokens", TokenIssuer)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
STARTED = web.AppKey("started", datetime)
#: What this app serves now: the config and the listener value — its role (SDKs read only the
#: first line of the role listing, so one listener serves one role over IMDS), channels and
#: client policy. A reload swaps it.
LIVE = web.AppKey("live", Live)
OBSERVER: web.AppKey[RequestObserver] = web.AppKey("observer")
