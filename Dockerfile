# inferwatch service image: `docker build -t inferwatch .`, then e.g.
#   docker run --rm inferwatch run --config /etc/inferwatch/inferwatch.yaml
FROM python:3.11-slim

# DO_NOT_TRACK: evidently (a dependency) sends usage telemetry unless told not to.
# MALLOC_ARENA_MAX: glibc's per-thread arenas otherwise grow the resident set of the
# collector over long runs (bench/README.md).
ENV DO_NOT_TRACK=1 \
    MALLOC_ARENA_MAX=2 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the package needs (not .venv, tests or local databases from the build context).
COPY pyproject.toml README.md ./
COPY inferwatch ./inferwatch
COPY collector ./collector
COPY detectors ./detectors
COPY alerting ./alerting
COPY sql ./sql

# inferwatch/sql links to ../sql, so the DDL is packaged with the code
RUN pip install . \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/inferwatch inferwatch

# The default SQLite database (sqlite:///inferwatch.db) lands in the working directory.
USER inferwatch
WORKDIR /var/lib/inferwatch

# Prometheus /metrics (set INFERWATCH_METRICS__HOST=0.0.0.0 to reach it from outside the container)
EXPOSE 9108

ENTRYPOINT ["inferwatch"]
CMD ["--help"]
