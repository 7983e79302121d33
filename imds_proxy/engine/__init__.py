"""Credentials, Source, Clock; the refresh engine and its policy; IMDSv2 tokens; instance metadata;
MFA sessions; served lifetime; doctor's verdicts."""
