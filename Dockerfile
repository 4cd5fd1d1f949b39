# The image of the code location: the code server, the daemon, the webserver and every run worker
# run from it (compose.yaml, deploy/helm/values.yaml; docs/operations.md, *Deploy*).
#
#   docker build -t mentor-pipeline:latest .
#
# BASE_IMAGE is the whole image reference (not a version to fill in), so a mirror or a locally
# built Debian with Python 3.11 can stand in where Docker Hub is out of reach.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Optional extras for a container run launcher: `k8s` for the Helm chart's K8sRunLauncher (each
# run loads the instance, which names dagster_k8s), `docker` for a DockerRunLauncher.
ARG EXTRAS=""
# The name this image is tagged with: a container run launcher (DockerRunLauncher, K8sRunLauncher)
# starts each run from DAGSTER_CURRENT_IMAGE, i.e. from this same image.
ARG IMAGE=mentor-pipeline:latest

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/home \
    DAGSTER_CURRENT_IMAGE=${IMAGE}

RUN python3 -m venv /opt/venv \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/mentor mentor

WORKDIR /opt/mentor_pipeline

# The pinned dependencies in a layer of their own, rebuilt only when pyproject.toml or
# deploy/constraints.txt change: an empty package stands in for the code. Never the demo or test extras.
# A CA bundle for a TLS-intercepting proxy may be passed as the build secret `pip-ca`
# (`--secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt`): pip uses it, the image never holds it.
# deploy/constraints.txt holds every package at the version tested, so a rebuild installs the same.
COPY pyproject.toml deploy/constraints.txt ./
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && mkdir mentor_pipeline && touch mentor_pipeline/__init__.py \
 && pip install -c constraints.txt ".${EXTRAS:+[$EXTRAS]}" && pip uninstall -y mentor_pipeline && rm -rf mentor_pipeline build *.egg-info

COPY supabase ./supabase
COPY mentor_pipeline ./mentor_pipeline
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && pip install --no-deps . && rm -rf build *.egg-info

# The production instance (unchanged) and the workspace of the compose stack (the code server by name).
COPY dagster.yaml ${DAGSTER_HOME}/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/workspace.yaml
COPY deploy/entrypoint.sh /usr/local/bin/mentor-pipeline-entrypoint
# storage/: compute logs (runs' stdout/stderr), written by the run workers, read by the webserver.
RUN mkdir -p ${DAGSTER_HOME}/storage && chown -R mentor:mentor ${DAGSTER_HOME}

USER mentor
WORKDIR /opt/dagster

# Checks the service that runs in the container (code server, daemon or webserver).
HEALTHCHECK --interval=30s --timeout=20s --start-period=120s --retries=3 \
    CMD ["python", "-m", "mentor_pipeline.service", "health"]

ENTRYPOINT ["mentor-pipeline-entrypoint"]
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "mentor_pipeline.definitions", "-a", "defs", "--location-name", "mentor_pipeline"]
