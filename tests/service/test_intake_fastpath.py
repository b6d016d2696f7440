"""The fast validators accept only what the strict models accept, and the bench's bodies.

`service.intake.fastpath` answers "valid" without asking `service.intake.models`; a body it
accepts that the models would refuse would be stored unchecked. Hypothesis builds bodies
near the schema (each field valid, or any JSON value, or left out; unknown fields added) and
every one the fast path accepts must pass the models.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from bench import payloads
from service.intake import fastpath, models

JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=4,
)


def near(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A valid value nine times in ten, else any JSON value: most bodies then have one thing
    wrong or none, the ones worth asking both validators about."""
    return st.integers(0, 9).flatmap(lambda roll: (JSON | NUMBER) if roll == 0 else valid)


def record(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with these fields near their types, optional ones left out at times, and at
    times a field neither lists (or a required one missing)."""
    fields = {name: near(value) for name, value in required.items()}
    extras = st.dictionaries(st.sampled_from(["extra", "metric", "message", "x"]), JSON, max_size=1)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        body = {name: draw(value) for name, value in fields.items()}
        for name, value in optional.items():
            if draw(st.booleans()):
                body[name] = draw(near(value))
        if draw(st.integers(0, 19)) == 0 and body:
            body.pop(draw(st.sampled_from(sorted(body))))
        if draw(st.integers(0, 9)) == 0:
            body.update(draw(extras))
        return body

    return build()


SMALL_INT = st.sampled_from([-1, 0, 1, 1000, 1001]) | st.integers(min_value=-5, max_value=1200)
STRINGS = st.text(max_size=4)
NUMBER = st.floats(allow_nan=False) | SMALL_INT
POINT = record({"timestamp": SMALL_INT, "value": NUMBER}, {})
ORIGIN = record({}, {"metric_type": SMALL_INT, "product": SMALL_INT, "service": SMALL_INT})
SERIES = record(
    {"metric": STRINGS, "points": st.lists(POINT, max_size=2)},
    {
        "type": st.sampled_from([0, 1, 2, 3, 4, True]),
        "interval": SMALL_INT,
        "metadata": record({}, {"origin": ORIGIN}),
        "resources": st.lists(record({}, {"name": STRINGS, "type": STRINGS}), max_size=2),
        "source_type_name": STRINGS,
        "tags": st.lists(STRINGS, max_size=2),
        "unit": STRINGS,
    },
)
METRICS = record({"series": st.lists(SERIES, max_size=2)}, {})
LOG_ITEM = record(
    {"message": STRINGS},
    dict.fromkeys(("ddsource", "ddtags", "hostname", "service", "status"), STRINGS),
)
LOGS = st.lists(LOG_ITEM, max_size=2)

CASES: list[tuple[Any, TypeAdapter[Any], st.SearchStrategy[Any]]] = [
    (fastpath.MetricPayload, TypeAdapter(models.MetricPayload), METRICS),
    (list[fastpath.HTTPLogItem], TypeAdapter(list[models.HTTPLogItem]), LOGS),
]


def strict_accepts(adapter: TypeAdapter[Any], document: Any) -> bool:
    try:
        adapter.validate_python(document)
    except ValidationError:
        return False
    return True


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_what_the_fast_path_accepts_the_models_accept(data: st.DataObject) -> None:
    for fast, strict, documents in CASES:
        document = data.draw(documents)
        if fastpath.accepts(fast, document):
            assert strict_accepts(strict, document), document


def test_the_fast_path_accepts_the_bench_bodies() -> None:
    assert fastpath.accepts(fastpath.MetricPayload, payloads.metrics_document(500))
    assert fastpath.accepts(list[fastpath.HTTPLogItem], payloads.logs_document(500))
