"""Datadog's OAuth failures, explained to the customer as what happened and what to do.

The texts follow Datadog's documented troubleshooting: each known error text maps to its
documented cause; anything else is shown as Datadog said it.
"""

from __future__ import annotations

from service.datadog.errors import DatadogError, DatadogUnauthorized, DatadogUnavailable
from service.errors import FlowFailure

START_AGAIN = "Go back to the partner's product and start connecting again."

API_KEY_RECOVERY = (
    "Your Datadog organization already has this integration's API key, and Datadog shows a "
    "key only once, so it could not be received again. To let the integration send data, "
    'revoke the key named "OAuth Client API Key" in Datadog (Organization Settings, API '
    "Keys), then connect again."
)


def authorize_failure(error: str, description: str | None) -> FlowFailure:
    """The page for an `error` Datadog put on the redirect back."""
    said = f"Datadog said: {error}" + (f" - {description}" if description else "") + "."
    if error == "access_denied":
        return FlowFailure(
            403,
            "Authorization was denied",
            "You chose not to authorize the integration, so nothing was connected.",
            START_AGAIN + " Approve the request on Datadog's page to connect.",
        )
    if description and "Invalid client_id" in description:
        return FlowFailure(
            400,
            "The integration is not available to your organization",
            f"{said} The integration is not published yet and your organization is not the "
            "partner's sandbox organization, or its test and published credentials are mixed up.",
            "Contact the partner's support; they need to publish the integration or fix its "
            "client credentials.",
        )
    if description and "Mismatching redirect URI" in description:
        return _mismatching_redirect(said)
    return FlowFailure(400, "Datadog did not authorize the integration", said, START_AGAIN)


def token_failure(exc: DatadogError) -> FlowFailure:
    """The page for a failed code exchange on `api.<domain>/oauth2/v1/token`."""
    said = f"Datadog said: {exc.error or exc.status} - {exc.description}."
    if isinstance(exc, DatadogUnavailable):
        return FlowFailure(
            503,
            "Datadog could not be reached",
            f"{exc.description}. Nothing was connected.",
            "Wait a few minutes, then " + START_AGAIN[0].lower() + START_AGAIN[1:],
        )
    if "Mismatching redirect URI" in exc.description:
        return _mismatching_redirect(said)
    if isinstance(exc, DatadogUnauthorized):
        return FlowFailure(
            502,
            "The integration's credentials were refused",
            f"{said} The integration's client ID or secret for this Datadog site is wrong.",
            "Contact the partner's support: the integration's client secret must be updated.",
        )
    if exc.error == "invalid_grant":
        return FlowFailure(
            400,
            "The authorization code was not accepted",
            f"{said} The code was already used, expired, or does not match this browser's request.",
            START_AGAIN,
        )
    return FlowFailure(400, "Datadog refused the connection", said, START_AGAIN)


def api_key_unclear() -> FlowFailure:
    return FlowFailure(
        503,
        "The connection is not finished",
        "Datadog did not answer clearly whether it created this integration's API key.",
        "Wait a few minutes and connect again. If Datadog then reports the key exists, revoke "
        '"OAuth Client API Key" in Datadog\'s API Keys page and connect once more.',
    )


def api_key_refused(exc: DatadogError) -> str:
    return (
        f"Connected, but Datadog refused to create the API key ({exc.description}), so "
        "telemetry cannot be sent yet. Contact the partner's support: the integration must "
        "request the api_keys_write scope."
    )


def _mismatching_redirect(said: str) -> FlowFailure:
    return FlowFailure(
        400,
        "The integration is misconfigured",
        f"{said} The integration's test and published client settings are mixed up.",
        "Contact the partner's support: the redirect URI registered with Datadog must match.",
    )
