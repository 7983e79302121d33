"""`Expect:` answered after the gates, not before: aiohttp's own expect handling runs ahead of
every middleware (a 500 on a non-UTF-8 value, a 417 to any Host or Origin)."""

from __future__ import annotations

from aiohttp import web


async def after_the_gates(_request: web.Request) -> None:
    """Send no interim `100 Continue` and refuse nothing here: no route reads a body, and
    the request gate judges the header (417 for anything but 100-continue) once the security
    checks have run."""
    return None
