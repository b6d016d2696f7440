"""A strict, in-memory Datadog emulator: OAuth, API keys and a control plane, on one HTTP server.

Every Datadog host is served under a path prefix naming it: a call meant for
`https://api.datadoghq.eu/oauth2/v1/token` arrives as `POST /api.datadoghq.eu/oauth2/v1/token`.
Tests and the demo drive it through the control plane under `/_emulator/`.
"""
