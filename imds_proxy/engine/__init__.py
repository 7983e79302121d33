"""Credentials, Source, Clock; the refresh engine, its timer and its policy; IMDSv2 tokens;
instance metadata; MFA sessions; served lifetime; doctor's verdicts."""
