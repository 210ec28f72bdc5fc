# BAMM for Blender — set-up, tests, main job.
#   make test                      create .venv, install pinned deps, run the test suite
#   make demo PROMPT="..."         generate from the shipped weights into out/
#   make extension                 build the Blender extension zip for Linux x64 into dist/ (extensions: all)
#   make blender-min               the stock-Blender tests on the oldest supported Blender (bpy 4.2, slow)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
SHARED ?= ../shared/data
PROMPT ?= an elderly person walks forward and waves with the right hand
SECONDS ?=
SEED   ?= 0
PYTEST_ARGS ?=
# bpy-only environments standing in for stock Blender (tests/test_blender_stock.py), kept in .cache/bpy-venvs
STOCK_BPY ?= 5.0.1 5.2.3
MIN_BPY ?= 4.2.23

# Shared libraries the bpy wheel links against (present on most desktops, not always on servers).
BPY_LIBS := libX11.so.6 libXrender.so.1 libXfixes.so.3 libXi.so.6 libxkbcommon.so.0 libSM.so.6 \
            libICE.so.6 libGL.so.1 libXext.so.6 libxcb.so.1
BPY_DEBS := libx11-6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libsm6 libice6 libgl1 libxext6 libxcb1

.PHONY: help venv sysdeps stock-blender test demo data extension extensions blender-min bench clean

help:
	@sed -n '1,5p' Makefile | sed 's/^# \{0,1\}//'

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and exactly pinned: an open range would pull the CUDA build
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -e .
	$(PIP) check
	touch $@

venv: $(VENV)/.installed

sysdeps:
	@missing=""; for lib in $(BPY_LIBS); do ldconfig -p | grep -q "$$lib" || missing="$$missing $$lib"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing shared libraries bpy needs:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $(BPY_DEBS); \
	fi

# Made once (about a minute each, from PyPI), then reused.
stock-blender: venv
	$(PY) tests/support/stock_blender.py create $(STOCK_BPY)

# pytest exits 5 when it collected nothing: for this project that means the suite went missing.
test: venv sysdeps stock-blender
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected: the test suite is missing" >&2; exit 1; fi; exit $$rc

data: venv
	$(VENV)/bin/bamm data build bandai $(SHARED)/bandai-namco --out data_cache/bandai --workers 2

demo: venv sysdeps
	$(VENV)/bin/bamm generate "$(PROMPT)" $(if $(SECONDS),--seconds $(SECONDS)) --seed $(SEED) --out out/

extension: venv
	$(VENV)/bin/bamm build-extension --platform linux-x64 --out dist/

extensions: venv
	$(VENV)/bin/bamm build-extension --all --out dist/

blender-min: venv sysdeps
	$(PY) tests/support/stock_blender.py create $(MIN_BPY)
	BAMM_STOCK_BPY=$(MIN_BPY) $(PY) -m pytest -q -p no:cacheprovider tests/test_blender_stock.py

bench: venv
	for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf out dist .pytest_cache
