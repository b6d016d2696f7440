"""Tests of the Datadog emulator, run against a real `python -m fakedatadog` process."""
