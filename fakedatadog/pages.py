"""HTML pages the emulator shows a browser, rendered from `templates/` with autoescaping."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader

_PAGES = Environment(loader=PackageLoader("fakedatadog"), autoescape=True)


def render(template: str, **context: Any) -> str:
    """Render one template; every value is HTML-escaped unless the template says otherwise."""
    return _PAGES.get_template(template).render(**context)
