# Two commands do everything on a fresh Debian machine (as root, or with sudo); make demo also runs on macOS with Homebrew:
#   make demo   installs what is missing, then runs all five stages on the built-in demo corpus
#   make test   installs what is missing, then runs the tests
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := gcc portaudio19-dev libportaudio2 libsndfile1 espeak-ng sox pulseaudio pulseaudio-utils libasound2-plugins
export TF_CPP_MIN_LOG_LEVEL := 2
export OPENBLAS_NUM_THREADS := 1

.PHONY: install system-packages demo test bench reference encoder clean

install: system-packages $(VENV)/.installed

system-packages:
ifeq ($(shell uname -s),Darwin)
	@command -v brew >/dev/null || { echo "Homebrew is missing: install it from https://brew.sh, then run make again."; exit 1; }
	@for package in portaudio espeak-ng; do brew list $$package >/dev/null 2>&1 || brew install $$package; done
else
	@missing=""; for package in $(APT_PACKAGES); do dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	$(PYTHON) -c 'import os, sysconfig; raise SystemExit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' || missing="$$missing python3-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endif

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

demo: install
	$(PY) set_up_sql.py
	$(PY) collect_background_noise.py --synthetic
	$(PY) speech_prep.py --demo
	$(PY) train_models.py
	$(PY) implement_model.py --wav data/demo_corpus/holdout
	@echo; echo "Why real voices matter: the demo model (synthetic voices only) against the reference model (real people):"
	$(PY) implement_model.py --model data/models/best.h5 --compare models/reference.h5 $(if $(wildcard $(EMODB)),--manifest $(EMODB) --limit 20,data/demo_corpus/holdout)

# Two worker processes, each taking whole test files (a module's trained model is made once): most tests wait
# on subprocesses, sound in real time or the disk, so two share the 2 cores well.
test: install
	$(PY) -m pytest -q -n 2 --dist loadfile tests

bench: install
	for benchmark in bench/*.py; do $(PY) $$benchmark || exit 1; done

EMODB := ../shared/data/emodb/labels.csv

# The reference model shipped in models/reference.h5, trained on every real voice found: EmoDB, LibriSpeech,
# RAVDESS and speechocean762 in ../shared/data, the SVD export in data/ (male_speech/, female_speech/), and the demo
# corpus; only 7 % of the speakers of each sex are kept out to calibrate it and 3 % to test it. It is the encoder
# network (the pretrained speaker encoder with a new head): the best on bench/accuracy.py's held-out corpora.
SHARED_DATA := ../shared/data
MANIFESTS := $(foreach corpus,emodb librispeech ravdess speechocean762,$(if $(wildcard $(SHARED_DATA)/$(corpus)/labels.csv),--manifest $(SHARED_DATA)/$(corpus)/labels.csv))
REFERENCE_DB := data/reference.db
reference: install
	$(PY) set_up_sql.py --db $(REFERENCE_DB)
	test -f data/background_noise.wav || $(PY) collect_background_noise.py --synthetic
	$(PY) speech_prep.py --db $(REFERENCE_DB) --demo $(MANIFESTS)
	$(PY) train_models.py --db $(REFERENCE_DB) --out data/models/reference --model encoder --name reference --fractions 0.90 0.07 0.03 $(if $(wildcard bench/accuracy.json),--bench bench/accuracy.json)
	mkdir -p models && cp data/models/reference/reference.h5 models/.reference.h5.tmp && mv models/.reference.h5.tmp models/reference.h5
	$(PY) train_models.py --check models/reference.h5 --db $(REFERENCE_DB)

clean:
	rm -rf data/features.db* data/models data/pictures data/recordings data/demo_corpus data/background_noise.wav

# The pretrained speaker encoder shipped in models/encoder/ge2e.h5, written again from the Resemblyzer wheel
# on PyPI (torch is never installed: acoustics/torchfile.py reads the checkpoint with numpy).
RESEMBLYZER_WHEEL := Resemblyzer-0.1.4-py3-none-any.whl
encoder: install
	folder=$$(mktemp -d) && trap 'rm -rf "$$folder"' EXIT && \
	$(PY) -m pip download -q --no-deps --only-binary :all: -d "$$folder" resemblyzer==0.1.4 && \
	$(PY) -m acoustics.encoderfile "$$folder/$(RESEMBLYZER_WHEEL)"
