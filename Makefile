# searchkit: two commands on a new machine.
#   make lab    set up .venv and open the notebooks in JupyterLab
#   make test   set up .venv and run every test, notebooks included
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup lab serve test exercises slides slides-tag clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

lab: setup
	$(BIN)/jupyter lab notebooks/

serve: setup
	$(BIN)/python -m searchkit serve

test: setup
	$(BIN)/python -m pytest --nbval --nbval-sanitize-with tests/sanitize.cfg --durations=15

exercises: setup
	$(BIN)/python -m searchkit.course exercises build/exercises

slides: setup
	$(BIN)/python -m searchkit.course slides build/slides

slides-tag: setup
	$(BIN)/python -m searchkit.course tag

clean:
	rm -rf data/cache build *.egg-info
