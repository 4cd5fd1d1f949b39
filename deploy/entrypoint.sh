#!/bin/sh
# The image's entrypoint: check that the service can start (its required variables are set, the
# code server's definitions load), then become it. `dagster code-server start` would otherwise keep
# serving, and pass its health check, with definitions that failed to load.
set -e
python -m mentor_pipeline.service preflight "$@"
exec "$@"
