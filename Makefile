# searchkit: two commands on a new machine.
#   make lab    set up .venv and open your copies of the notebooks (exercises empty) in JupyterLab
#   make test   set up .venv and run every test, notebooks included
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
LEARNER := exercises
# JupyterLab refuses to run as root (as in many containers) unless told to.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab solutions serve test exercises slides slides-tag screenshot clean

setup: $(STAMP)

# torch first, from PyTorch's CPU wheel index when it answers within 3 s (the default index gives Linux the
# multi-GB CUDA build); offline, or when that index fails, pip takes torch from the default index with the rest.
$(STAMP): requirements.txt pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip || echo "pip upgrade skipped (offline?)"
	@torch=$$(grep -o '^torch==[^ ]*' requirements.txt); \
	if [ "$$(uname -s)" = Linux ] && curl -s -m 3 -o /dev/null $(TORCH_CPU_INDEX)/; then \
	  echo "installing $$torch (CPU build) from $(TORCH_CPU_INDEX)"; \
	  $(BIN)/pip install --quiet --timeout 10 --retries 0 --index-url $(TORCH_CPU_INDEX) "$$torch" \
	    || echo "the CPU wheel index failed: torch comes from the default index"; \
	else echo "$(TORCH_CPU_INDEX) not reachable: torch comes from the default index"; fi
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .  # setuptools' default editable mode: no removal warning
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Your copies of the notebooks, solutions emptied; copies you already have are kept, never overwritten.
exercises: setup
	$(BIN)/python tools/course.py exercises $(LEARNER)

lab: exercises
	$(BIN)/jupyter lab $(ROOT_FLAG) $(LEARNER)/

# The course's own notebooks, every solution filled in and every output saved.
solutions: setup
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/

serve: setup
	$(BIN)/python -m searchkit serve

# docs/search-page.png: the search page with results, in Debian's headless chromium (apt-get install chromium)
screenshot: setup
	$(BIN)/python tools/screenshot.py docs/search-page.png

test: setup
	$(BIN)/python -m pytest --nbval --nbval-sanitize-with tests/sanitize.cfg --durations=15

slides: setup
	$(BIN)/python tools/course.py slides build/slides

slides-tag: setup
	$(BIN)/python tools/course.py tag

clean:
	rm -rf data/cache build *.egg-info
