# ddbridge: one image for the API, the worker, migrations and the Datadog emulator.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml ./
COPY service ./service
COPY worker ./worker
COPY fakedatadog ./fakedatadog
RUN pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin ddbridge
COPY --from=build /opt/venv /opt/venv
# The code also runs from /app, with the Alembic migrations beside the `service` package where
# `ddbridge migrate` looks for them; the installed copy supplies the dependencies and commands.
WORKDIR /app
COPY alembic.ini ./
COPY alembic ./alembic
COPY service ./service
COPY worker ./worker
COPY fakedatadog ./fakedatadog
ENV PYTHONPATH=/app
USER ddbridge
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# `ddbridge api`, not bare uvicorn: no access log, h11 with a header limit (see README).
CMD ["ddbridge", "api", "--host", "0.0.0.0", "--port", "8000"]
