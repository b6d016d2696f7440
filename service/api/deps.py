"""Dependencies named once: `ResourcesDep`, `SessionDep` and `DrainDep`.

The internal token is not a dependency: FastAPI reads a body before dependencies run, so
`service.api.guard` checks it first. Each dependency is `async def`: FastAPI runs a plain
`def` one in its thread pool, a thread hand-off per request for reading an attribute.
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


async def _resources(request: Request) -> Resources:
    return get_resources(request)


ResourcesDep = Annotated[Resources, Depends(_resources)]


def get_drain(request: Request) -> Drain:
    drain: Drain = request.state.drain
    return drain


async def _drain(request: Request) -> Drain:
    return get_drain(request)


DrainDep = Annotated[Drain, Depends(_drain)]


async def get_session(res: ResourcesDep) -> AsyncIterator[AsyncSession]:
    async with res.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
