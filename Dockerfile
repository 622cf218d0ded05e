# gossipmq node image: one `gossipctl run` per container.
#
#   docker build -t gossipmq .                      # from the repository root (needs PyPI + the base image)
#   docker run --rm gossipmq --help                 # the entrypoint is gossipctl
#   docker run -d --name n1 -e GOSSIPMQ_SEEDS=tasks.gossipmq gossipmq   # `run` is the default command
#   docker exec n1 gossipctl status                 # client commands find the node by themselves
#
# Build arguments
#   BASE      any Debian-like image whose `python3` is >= 3.11 and has the venv module
#             (default python:3.11-slim; the test harness passes a debootstrap-made bookworm image)
#   UID, GID  of the unprivileged `gossipmq` user the node runs as (default 10001)
#
# Offline builds: put wheels in deploy/wheelhouse/ (gossipmq's dependencies, and setuptools>=77 +
# wheel to build gossipmq itself: `pip wheel -w deploy/wheelhouse . "setuptools>=77" wheel`).
# When that directory holds any *.whl, pip runs with --no-index and uses only those wheels;
# when it holds none (as in a fresh clone), pip uses the index as usual.
#
# Every setting comes from /etc/gossipmq/gossipmq.toml (deploy/docker/gossipmq.toml, or your own
# file through GOSSIPMQ_CONFIG) and can be overridden by GOSSIPMQ_* environment variables:
# GOSSIPMQ_NODE_ID, _BIND, _ADVERTISE, _SEEDS (comma-separated), _CONTROL, _CLUSTER,
# _LOG_LEVEL, _LOG_FORMAT, _METRICS, and any TOML key as GOSSIPMQ_<TABLE>__<KEY>=<TOML value>,
# e.g. GOSSIPMQ_STORAGE__BACKEND=memory. See docs/deploy.md.
#
# Only features both the classic builder and BuildKit understand are used here.

ARG BASE=python:3.11-slim

# ---- build: wheels for gossipmq and every dependency, installed into a venv -----------------------
FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
COPY deploy/wheelhouse/ /wheelhouse/
COPY pyproject.toml README.md LICENSE /src/
COPY gossipmq /src/gossipmq
COPY core /src/core
COPY plugins /src/plugins
COPY transports /src/transports
RUN set -eu; \
    if ls /wheelhouse/*.whl >/dev/null 2>&1; then \
        echo "wheelhouse: $(ls /wheelhouse/*.whl | wc -l) wheels in the build context, installing with --no-index"; \
        export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheelhouse; \
    fi; \
    python3 -m venv /opt/build; \
    /opt/build/bin/pip wheel -q -w /wheels /src; \
    python3 -m venv /opt/gossipmq; \
    /opt/gossipmq/bin/pip install -q --no-index --find-links /wheels gossipmq; \
    /opt/gossipmq/bin/gossipctl plugins >/dev/null

# ---- runtime: the venv, a config, an unprivileged user --------------------------------------------
FROM ${BASE}
ARG UID=10001
ARG GID=10001
RUN set -eu; \
    groupadd --system --gid "${GID}" gossipmq; \
    useradd --system --uid "${UID}" --gid gossipmq --home-dir /var/lib/gossipmq --no-create-home \
            --shell /usr/sbin/nologin gossipmq; \
    mkdir -p /etc/gossipmq /var/lib/gossipmq /run/gossipmq; \
    chown gossipmq:gossipmq /var/lib/gossipmq /run/gossipmq
COPY --from=build /opt/gossipmq /opt/gossipmq
COPY deploy/docker/gossipmq.toml /etc/gossipmq/gossipmq.toml
ENV PATH=/opt/gossipmq/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GOSSIPMQ_CONFIG=/etc/gossipmq/gossipmq.toml \
    GOSSIPMQ_CONTROL=ipc:///run/gossipmq/control.sock
# SQLite replicas ([storage] path = "/var/lib/gossipmq/{id}.db" in the default config)
VOLUME ["/var/lib/gossipmq"]
WORKDIR /var/lib/gossipmq
# gossip inbox (ROUTER); the metrics endpoint, when configured, is usually 9464
EXPOSE 7946
USER gossipmq
# SIGTERM = graceful leave: the node hands off its recent writes, tells its peers it left, exits.
# Give it more than the leave flush (a few seconds): docker stop -t 10, stop_grace_period, ...
STOPSIGNAL SIGTERM
# Healthy = the node answers on its control endpoint (membership and store are served from there).
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["gossipctl", "status"]
ENTRYPOINT ["gossipctl"]
CMD ["run"]
LABEL org.opencontainers.image.title="gossipmq" \
      org.opencontainers.image.description="gossip-based, eventually consistent key-value cluster over ZeroMQ" \
      org.opencontainers.image.licenses="MIT"
