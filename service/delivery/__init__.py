"""Delivering the outbox to each org's Datadog intake, one partition at a time."""
