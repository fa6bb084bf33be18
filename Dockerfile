# syntax=docker/dockerfile:1
# o2c-streams worker image: `docker build -t o2c-streams .` then run `o2c worker` (the entrypoint)
# with O2C_* settings in the environment. The Helm chart in helm/o2c-streams deploys it.
#
# Stage 1 builds wheels for the project and every pinned dependency (compilers stay here);
# stage 2 installs only those wheels into a slim Python and runs as an unprivileged user.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams streams
COPY tables tables
COPY sinks sinks
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
# rocksdict links libstdc++, which manylinux wheels expect from the system, not bundled.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 o2c \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin o2c
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --disable-pip-version-check --no-index --find-links=/wheels o2c-streams
WORKDIR /app
# The settings' default schemas_dir is relative to a source checkout; the image has none.
COPY schemas /app/schemas
RUN mkdir -p /var/lib/o2c && chown 10001:10001 /var/lib/o2c
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    O2C_SCHEMAS_DIR=/app/schemas \
    O2C_DATA_DIR=/var/lib/o2c \
    O2C_WEB_HOST=0.0.0.0 \
    O2C_WEB_PORT=6066
VOLUME ["/var/lib/o2c"]
USER 10001:10001
EXPOSE 6066
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('O2C_WEB_PORT', '6066'), timeout=3)"]
ENTRYPOINT ["o2c", "worker"]
