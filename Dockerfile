# syntax=docker/dockerfile:1
#
# One image for the two isoswitch processes of docker-compose.yml:
#   isoswitch serve ...   the switch core + REST front (+ ISO listener)
#   isoswitch sim ...     the simulated issuer host (acquirer_sim)
# Without a command it runs `isoswitch up`: everything in one container, with
# an embedded PostgreSQL in /var/lib/isoswitch (a quick look, not production);
# deploy/isoswitch.toml is its configuration.
#
#   docker build -t isoswitch:local .
#
# tests/test_deploy.py keeps this file in line with the code and the compose file.

ARG PYTHON_IMAGE=python:3.11-slim

# -- build: a virtualenv with isoswitch and its runtime dependencies (all wheels) --
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/isoswitch
ENV PATH=/opt/isoswitch/bin:$PATH
WORKDIR /src

# Dependencies first, from the lock (exact versions, hashes checked): a layer that survives code
# changes. The runtime set only: no dev tools, no bench plotting (the `bench` extra).
COPY requirements/runtime.txt ./requirements/
RUN pip install --require-hashes -r requirements/runtime.txt

# Then the project itself, built with the locked setuptools (nothing unpinned is fetched).
COPY pyproject.toml README.md ./
COPY switch/ ./switch/
COPY acquirer_sim/ ./acquirer_sim/
COPY http_front/ ./http_front/
COPY schemas/ ./schemas/
COPY bench/ ./bench/
COPY isoswitch/ ./isoswitch/
RUN pip install . --no-deps --no-build-isolation \
 && isoswitch --help > /dev/null

# -- runtime --------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ARG UID=10001
RUN groupadd --system --gid ${UID} isoswitch \
 && useradd --system --uid ${UID} --gid isoswitch --home-dir /var/lib/isoswitch --no-create-home \
        --shell /usr/sbin/nologin isoswitch \
 && install -d -o isoswitch -g isoswitch -m 0700 /var/lib/isoswitch \
 && install -d -o isoswitch -g isoswitch -m 0700 /var/lib/acquirer-sim /var/lib/acquirer-sim/keys \
 && install -d -m 0755 /etc/isoswitch
# /var/lib/acquirer-sim/keys: compose's sim-keys volume is mounted there; a new named volume takes the
# directory's owner from the image, so the (non-root) `keys` service may write the simulator's keys into it.
COPY --from=build /opt/isoswitch /opt/isoswitch
# Every isoswitch command in the container reads it (ISOSWITCH_CONFIG below);
# the compose file mounts the repository's copy over it (edit without rebuilding).
COPY deploy/isoswitch.toml /etc/isoswitch/isoswitch.toml
ENV PATH=/opt/isoswitch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ISOSWITCH_CONFIG=/etc/isoswitch/isoswitch.toml

USER isoswitch:isoswitch
WORKDIR /var/lib/isoswitch

# 8080 REST front (/health, /metrics, /docs), 8585 ISO listener of the switch,
# 8583 simulator ISO port, 8584 simulator admin API (/health, /metrics, /ledger).
EXPOSE 8080 8585 8583 8584

# SIGTERM starts the orderly shutdown ([process] shutdown_timeout, 25 s): give it longer than
# Docker's default 10 s, e.g. `docker run --stop-timeout 35` (compose sets stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["isoswitch", "up"]
