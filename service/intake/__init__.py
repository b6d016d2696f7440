"""Accepting sends: Datadog-format bodies validated, chunked and committed to the outbox."""
