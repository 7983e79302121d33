"""Error types; every message is written for a human and says what to do next."""

from __future__ import annotations

from collections.abc import Sequence


class ImdsProxyError(Exception):
    """Base of every error this program raises on purpose."""


class ConfigError(ImdsProxyError):
    """A configuration value is missing or invalid; names the key and the fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        super().__init__(f"config error: {key}: {problem}; {fix}")


class ConfigErrors(ConfigError):
    """Several independent values are invalid: `errors` holds each (one line apiece for the
    CLI); key, problem and fix are the first one's."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.key, first.problem, first.fix)
        self.errors = tuple(errors)
        # One line where one is wanted (a refused reload's log line).
        self.args = (" | ".join(str(e) for e in self.errors),)


class ScenarioError(ConfigError):
    """A sandbox scenario file is broken; names the file, the key and the fix."""

    def __init__(self, source: str, key: str, problem: str, fix: str) -> None:
        super().__init__(key, problem, fix)
        self.source = source
        self.args = (f"scenario error: {source}: {key}: {problem}; {fix}",)


class ListenError(ImdsProxyError):
    """A listener could not be bound; `reason` is the system's word for why."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class SandboxUnavailable(ImdsProxyError):
    """The optional sandbox dependencies are not installed."""


class SourceError(ImdsProxyError):
    """Getting role credentials failed. `retryable` says whether trying again can help."""

    retryable = True
    #: Only someone's action can help (an MFA code): the engine stops calling the source on
    #: its timer, and requests stop waiting for it, until it is woken with new input.
    needs_input = False
    code = "SourceError"


class SourceCredentialsMissing(SourceError):
    """We have no credentials of our own to call STS with."""

    retryable = False
    code = "NoSourceCredentials"


class SourceCredentialsInvalid(SourceError):
    """STS rejected our own credentials (unknown key, bad signature, expired session)."""

    retryable = False
    code = "InvalidSourceCredentials"


class AssumeRoleDenied(SourceError):
    """STS refused AssumeRole: caller permissions, trust policy, ExternalId or MFA."""

    retryable = False
    code = "AssumeRoleUnauthorizedAccess"


class DurationTooLong(SourceError):
    """DurationSeconds is above the role's MaxSessionDuration (or the 1 h chaining cap)."""

    retryable = False
    code = "InvalidDuration"


class MfaRequired(SourceError):
    """The role needs an MFA code and none is at hand; `imds-proxy mfa` delivers one."""

    retryable = False
    needs_input = True
    code = "MfaRequired"


class ControlError(ImdsProxyError):
    """The control socket cannot be set up, reached, or refused a request."""


class CredentialsUnavailable(ImdsProxyError):
    """No valid credentials can be served for a role right now."""

    def __init__(self, role: str, cause: SourceError | None) -> None:
        self.role = role
        self.cause = cause
        reason = str(cause) if cause else "credentials are not available yet"
        super().__init__(f"no valid credentials for role {role}: {reason}")

    @property
    def code(self) -> str:
        return self.cause.code if self.cause else "CredentialsUnavailable"


class CommandNotRunnable(ImdsProxyError):
    """`exec` could not start its command; `exit_code` follows the shell (127, 126)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
