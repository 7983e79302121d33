"""What every handler of one listener's app works with: the engine, the token issuer, the clock,
the observer — shared by the listeners of one daemon — and the listener's live view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from imds_proxy.engine.credentials import Clock
from imds_proxy.engine.refresh import CredentialEngine
from imds_proxy.engine.tokens import TokenIssuer
from imds_proxy.server.live import Live
from imds_proxy.server.observe import RequestObserver


@dataclass(frozen=True)
class Parts:
    engine: CredentialEngine
    tokens: TokenIssuer
    clock: Clock
    started: datetime
    observer: RequestObserver
    #: What this app serves now: the config and the listener value — its role (SDKs read only
    #: the first line of the role listing, so one listener serves one role over IMDS), channels
    #: and client policy. A reload swaps it.
    live: Live
