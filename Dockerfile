# syntax=docker/dockerfile:1
# Image of the ktf worker. Multi-stage: the builder turns the project into a wheel and
# installs it (with its dependencies) into a virtualenv; the runtime stage copies only
# that virtualenv, the Avro schemas and a non-root user onto a slim Python base.
#
#   docker build -t ktf-worker .
#   docker build -t my-worker --build-arg EXTRA_PACKAGES="my-handlers==1.2.0" .
#   docker run --rm -e KTF_BOOTSTRAP_SERVERS=kafka:9092 ktf-worker          # ktf worker
#   docker run --rm ktf-worker topics ensure --handlers handlers.examples   # other ktf commands
#
# Handler plugins: the example package `handlers` is part of the wheel. Add others with
# the EXTRA_PACKAGES build argument (pip requirement specifiers, e.g. packages exposing
# the `framework.handlers` entry point), or in a derived image:
#   FROM ktf-worker
#   COPY --chown=10001:10001 my_handlers/ /app/my_handlers/
#   ENV KTF_HANDLERS=my_handlers

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the wheel needs: a change to tests or docs does not invalidate this layer.
# constraints.txt pins every runtime dependency to the version the tests ran against
# (scripts/pin-constraints.py), so a rebuild never picks up an untested release.
COPY pyproject.toml README.md constraints.txt ./
COPY framework/ framework/
COPY handlers/ handlers/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install -c constraints.txt /wheels/kafka_task_framework-*.whl
ARG EXTRA_PACKAGES=""
# Plugins install under the same constraints: they cannot move ktf's dependencies.
RUN if [ -n "${EXTRA_PACKAGES}" ]; then /opt/venv/bin/pip install -c constraints.txt ${EXTRA_PACKAGES}; fi

FROM ${PYTHON_IMAGE} AS runtime
ARG KTF_UID=10001
RUN groupadd --system --gid "${KTF_UID}" ktf \
    && useradd --system --uid "${KTF_UID}" --gid ktf --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin ktf
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root schemas/ /app/schemas/
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KTF_SCHEMAS_DIR=/app/schemas \
    KTF_HANDLERS=handlers.examples \
    KTF_METRICS_PORT=9100 \
    KTF_LOG_FORMAT=json
USER 10001:10001
EXPOSE 9100
# The worker handles SIGTERM itself (stop fetching, drain, commit, leave the group).
STOPSIGNAL SIGTERM
ENTRYPOINT ["ktf"]
CMD ["worker"]
