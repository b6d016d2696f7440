"""`/openapi.json` and `/docs` are served as DDBRIDGE_API_DOCS says: behind the internal token
(the default), public, or not at all."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from harness import processes
from tests.support.stack import Stack


async def test_by_default_the_description_needs_the_internal_token(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.api_url) as stranger:
        anonymous = await stranger.get("/openapi.json")
        wrong = await stranger.get("/openapi.json", headers={"Authorization": "Bearer nope"})
        page = await stranger.get("/docs")
        redoc = await stranger.get("/redoc")
    described = await stack.api.get("/openapi.json")

    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert (page.status_code, redoc.status_code) == (404, 404)
    assert described.status_code == 200
    assert "/internal/v1/authorizations" in described.json()["paths"]


@pytest.mark.parametrize(("docs", "served"), [("off", False), ("public", True)])
async def test_the_setting_turns_the_description_off_or_public(
    stack: Stack, log_dir: Path, docs: str, served: bool
) -> None:
    port = processes.free_port()
    env = {**stack.environment(), "DDBRIDGE_API_DOCS": docs}
    child = processes.start(
        f"api-docs-{docs}", ["service", "api", "--port", str(port)], env, log_dir
    )
    try:
        processes.wait_until_answers(child, f"http://127.0.0.1:{port}/healthz")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as stranger:
            anonymous = await stranger.get("/openapi.json")
            page = await stranger.get("/docs")
            with_token = await stranger.get(
                "/openapi.json", headers={"Authorization": f"Bearer {stack.internal_token}"}
            )
            # Swagger UI's script and styles come from ddbridge itself: no CDN, works offline.
            assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
            fetched = {asset: (await stranger.get(asset)).status_code for asset in assets}
    finally:
        child.stop()

    expected = 200 if served else 404
    assert (anonymous.status_code, page.status_code, with_token.status_code) == (
        expected,
        expected,
        expected,
    )
    if served:
        assert "/openapi.json" in page.text
        assert "/docs/assets/swagger-ui-bundle.js" in assets
        assert all(asset.startswith("/") for asset in assets), assets
        assert set(fetched.values()) == {200}, fetched
