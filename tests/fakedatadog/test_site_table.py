"""The emulator's site table agrees with the product's, row by row: a wrong host on either side
fails here instead of being copied by the other."""

from __future__ import annotations

from pathlib import Path

from fakedatadog import sites as emulator
from service import sites as product

Row = tuple[str, str, str, str, str | None, str | None]


def _emulator_rows() -> dict[str, Row]:
    return {
        s.domain: (s.name, s.app_host, s.api_host, s.logs_host, s.trace_host, s.otlp_host)
        for s in emulator.KNOWN_SITES
    }


def _product_rows() -> dict[str, Row]:
    return {
        s.domain: (
            s.name,
            s.app_host,
            s.api_host,
            s.logs_host,
            s.trace_host if s.has_otlp_intake else None,
            s.otlp_host if s.has_otlp_intake else None,
        )
        for s in product.KNOWN_SITES
    }


def test_both_tables_name_the_same_domains() -> None:
    assert sorted(_emulator_rows()) == sorted(_product_rows())


def test_every_site_has_the_same_hosts_and_trace_intake() -> None:
    emulated, shipped = _emulator_rows(), _product_rows()
    differences = {
        domain: {"emulator": emulated[domain], "product": shipped[domain]}
        for domain in emulated.keys() & shipped.keys()
        if emulated[domain] != shipped[domain]
    }
    assert differences == {}


def test_the_emulator_table_is_the_documented_one() -> None:
    """Spot checks against Datadog's site page: `app.` only on US1, EU1 and US1-FED; no
    agentless OTLP intake on the FED sites; OTLP metrics and logs on `otlp.<domain>`."""
    by_name = {s.name: s for s in emulator.KNOWN_SITES}
    assert len(by_name) == 9
    assert sorted(n for n, s in by_name.items() if s.app_host.startswith("app.")) == [
        "EU1",
        "US1",
        "US1-FED",
    ]
    assert sorted(n for n, s in by_name.items() if s.trace_host is None) == ["US1-FED", "US2-FED"]
    assert by_name["AP2"].otlp_host == "otlp.ap2.datadoghq.com"
    assert by_name["US2-FED"].otlp_host is None
    assert by_name["UK1"].logs_host == "http-intake.logs.uk1.datadoghq.com"


def test_the_emulator_does_not_import_the_product() -> None:
    """The witness stays independent: no module of `fakedatadog` imports `service`."""
    root = Path(emulator.__file__).parent
    importing = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "from service" in path.read_text() or "import service" in path.read_text()
    ]
    assert importing == []
