# mcu-compile: the two commands of the README, and the set-up they share.
#   make demo   compile the seed 003 MobileNetV2, run it in QEMU, print the budget report
#   make test   run the test suite
# Both install what is missing first (Debian toolchain + QEMU, a venv with pinned packages).

VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm make cmake
STAMP := $(VENV)/.installed

.PHONY: setup toolchain demo test test-all clean

setup: toolchain $(STAMP)

toolchain:
	@bash scripts/install_toolchain.sh $(APT_PACKAGES)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "installing Python packages into $(VENV) (torch 2.13.0 CPU, torchao, tflite-micro, vela...)"
	@$(PY) -m pip install -qq --disable-pip-version-check -c constraints.txt torch==2.13.0
	@$(PY) -m pip install -qq --disable-pip-version-check -c constraints.txt -e '.[test,npu]'
	@touch $(STAMP)

demo: setup
	@$(PY) examples/demo.py

test: setup
	@$(VENV)/bin/pytest -q -n 2

test-all: setup
	@$(VENV)/bin/pytest -q -n 2 -m ''

clean:
	rm -rf build mcu_out .pytest_cache
