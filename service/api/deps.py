"""Dependencies named once: `ResourcesDep`, `SessionDep` and `DrainDep`.

The internal token is not a dependency: FastAPI reads a body before dependencies run, so
`service.api.guard` checks it first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from service.resources import Resources
from service.shutdown import Drain


def get_resources(request: Request) -> Resources:
    resources: Resources = request.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


def get_drain(request: Request) -> Drain:
    drain: Drain = request.state.drain
    return drain


DrainDep = Annotated[Drain, Depends(get_drain)]


async def get_session(res: ResourcesDep) -> AsyncIterator[AsyncSession]:
    async with res.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
