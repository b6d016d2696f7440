"""Dependencies named once: `ResourcesDep`, `SessionDep`, and the internal-token guard."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from service.errors import Unauthorized
from service.resources import Resources


def get_resources(request: Request) -> Resources:
    resources: Resources = request.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_session(res: ResourcesDep) -> AsyncIterator[AsyncSession]:
    async with res.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def require_internal_token(
    res: ResourcesDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Accept only `Authorization: Bearer <one of DDBRIDGE_INTERNAL_TOKENS>`.

    Every configured token is compared in constant time, so timing reveals neither which
    token nor how much of one matched.
    """
    scheme, _, presented = (authorization or "").partition(" ")
    matched = False
    for token in res.settings.internal_tokens:
        matched |= hmac.compare_digest(presented.encode(), token.get_secret_value().encode())
    if scheme.lower() != "bearer" or not matched:
        raise Unauthorized("a valid internal API bearer token is required")


Internal = Depends(require_internal_token)
