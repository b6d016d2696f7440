"""No credential the emulator issued appears in the database, ddbridge's logs, any response
ddbridge gave or any webhook it sent during the whole run (this test runs last and inspects
what the run left)."""

from __future__ import annotations

import asyncpg
import pytest

from tests.support.stack import Recorder, Stack, asyncpg_dsn
from tests.support.webhook_receiver import Receiver


@pytest.mark.last
async def test_no_issued_secret_is_stored_logged_or_returned(
    stack: Stack, recorder: Recorder, account_id: str, webhook: Receiver
) -> None:
    # Exercise every path that handles credentials once more, so this test stands alone too.
    org = await stack.create_org("datadoghq.eu")
    await stack.connect(account_id, org, domain="datadoghq.eu")
    [connection] = await stack.connections(account_id)
    await stack.api.get(f"/internal/v1/connections/{connection['id']}")
    await stack.api.delete(f"/internal/v1/connections/{connection['id']}")
    await stack.collect_secrets()
    secrets = {s for s in recorder.secrets if len(s) >= 16}
    assert len(secrets) >= 4, "a client secret, an access and a refresh token, an API key"

    database = await _dump(stack.database_url)
    logs = {child.name: child.output() for child in stack.children if child.name != "emulator"}
    assert logs["api"], "the API log is captured"

    for secret in secrets:
        assert secret not in database, "a secret is stored in plaintext"
        for name, text in logs.items():
            assert secret not in text, f"a secret is in the {name} log"
        for response in recorder.responses:
            assert secret not in response, "a secret was returned by ddbridge"
        for notification in webhook.received:
            assert secret.encode() not in notification.body, "a secret was in a webhook"


async def _dump(database_url: str) -> str:
    """Every row of every table, as text (bytea included, both raw and hex)."""
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        tables = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        parts = []
        for table in tables:
            for row in await db.fetch(f'SELECT * FROM "{table["tablename"]}"'):
                for value in row.values():
                    if isinstance(value, bytes):
                        parts.append(value.decode("latin-1"))
                        parts.append(value.hex())
                    else:
                        parts.append(str(value))
        return "\n".join(parts)
    finally:
        await db.close()
