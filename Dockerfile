# modelhost: one image for a shared pool (every model in the repository) or a per-model
# deployment (MODELHOST_MODELS=resnet,bert).
#
#   podman build --build-arg EXTRAS=onnx,sklearn -t modelhost .      (or docker build)
#   podman run -p 8080:8080 -p 8081:8081 -v ./models:/models:ro modelhost
#
# Build arguments:
#   BASE_IMAGE  a Debian-based image with Python 3.11 and its venv module (the official one by
#               default; the tests use a minimal one made with mmdebstrap)
#   EXTRAS      the runtimes to install: onnx, sklearn, torch, transformers, minilm, or all
#   MODEL_DIR   a folder of <name>/<version>/ inside the build context, baked in as a read-only
#               tier served before the model repository (a new pod answers without a download)
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS   where pip looks (the CPU build of
#               torch: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu); build stage only
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG EXTRAS=onnx,sklearn
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_WARN_SCRIPT_LOCATION=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/bootstrap scripts/
COPY src src/
# The same install script as a checkout's (scripts/bootstrap), into a virtualenv of its own
# that the runtime stage copies whole; pip's cache stays in the builder, not in a layer.
RUN --mount=type=cache,target=/root/.cache/pip \
    MODELHOST_VENV=/opt/modelhost MODELHOST_EDITABLE=0 scripts/bootstrap "${EXTRAS}" \
    && /opt/modelhost/bin/python -m pip uninstall --quiet --yes pip

FROM ${BASE_IMAGE} AS runtime
# A fixed numeric id: Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/modelhost \
        --no-create-home --shell /usr/sbin/nologin modelhost \
    && mkdir -p /models /var/lib/modelhost /var/cache/modelhost \
    && chown modelhost:modelhost /var/lib/modelhost /var/cache/modelhost
COPY --from=build /opt/modelhost /opt/modelhost
ARG MODEL_DIR=deploy/image/no-baked-models
COPY ${MODEL_DIR} /opt/modelhost-models/

# Listen on every interface; size the model budget and the compute threads by the container's
# cgroup limits. State that outlives a request goes to volumes (/var/lib/modelhost for the
# SQLite file and usage journal when no PostgreSQL is set, /var/cache/modelhost for artifacts
# fetched from S3), so the root filesystem can be read-only.
ENV PATH=/opt/modelhost/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/modelhost \
    MODELHOST_HOST=0.0.0.0 \
    MODELHOST_PORT=8080 \
    MODELHOST_GRPC_PORT=8081 \
    MODELHOST_MODEL_REPOSITORY=/models \
    MODELHOST_BAKED_MODELS=/opt/modelhost-models \
    MODELHOST_MEMORY_BUDGET=auto \
    MODELHOST_CORES=auto \
    MODELHOST_CACHE_DIR=/var/cache/modelhost \
    MODELHOST_DATABASE_URL=sqlite:////var/lib/modelhost/modelhost.db \
    MODELHOST_USAGE_JOURNAL=/var/lib/modelhost/usage.journal
USER 10001:10001
WORKDIR /var/lib/modelhost
# HTTP: the Open Inference Protocol, the management API, /metrics. gRPC: the Open Inference
# Protocol and grpc.health.v1 (MODELHOST_GRPC_PORT; unset it to serve HTTP only).
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-m", "modelhost.cli.probe"]
# SIGTERM drains: readiness turns false, requests in flight finish within
# MODELHOST_SHUTDOWN_GRACE_SECONDS, usage records are flushed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["modelhost"]
CMD ["serve"]
