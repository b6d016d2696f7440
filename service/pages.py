"""HTML pages for browsers: the onboarding outcome and the dev-mode demo sign-in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from service.errors import FlowFailure

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
)


@dataclass(frozen=True, slots=True)
class Link:
    href: str
    text: str


@dataclass(frozen=True, slots=True)
class Form:
    """A POST form: hidden fields, optionally the account id to type, and one button."""

    action: str
    hidden: dict[str, str] = field(default_factory=dict)
    ask_account: bool = False
    button: str = "Continue"


_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # No form-action: browsers apply it to the redirects after a submit, and the demo sign-in
    # form's answer redirects on to Datadog's authorize page.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}


def page(
    title: str,
    explanation: str,
    *,
    advice: str | None = None,
    status_code: int = 200,
    kind: str = "ok",
    link: Link | None = None,
    form: Form | None = None,
) -> HTMLResponse:
    html = _templates.get_template("page.html").render(
        title=title, explanation=explanation, advice=advice, kind=kind, link=link, form=form
    )
    return HTMLResponse(html, status_code=status_code, headers=_HEADERS)


def failure_page(failure: FlowFailure, link: Link | None = None) -> HTMLResponse:
    return page(
        failure.title,
        failure.explanation,
        advice=failure.advice,
        status_code=failure.status_code,
        kind="failed",
        link=link,
    )
