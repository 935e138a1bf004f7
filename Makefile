# The few commands a newcomer needs. Everything runs through uv against the committed uv.lock.
UV ?= uv
export UV_FROZEN := 1

.PHONY: setup test lint format bench bench-search calibrate run

# Compiled to bytecode once at install: where PYTHONDONTWRITEBYTECODE is set (as on the machines this
# was built on), every new interpreter otherwise compiled torch's sources again. `photomatch compare`
# took 20.9 s against 9.7, and each worker, CLI and stack process the tests start paid it. `make test`
# on 2 cores: 17.6-18.3 -> 12.5 minutes (2026-12-07; compiling takes 36 s once, 1.3 s when unchanged).
setup:  ## install the locked environment (.venv), compiled to bytecode
	$(UV) sync --frozen --compile-bytecode

test: setup  ## the whole test suite, as CI runs it
	$(UV) run pytest -q

lint:  ## ruff, formatting, mypy, the import-layering contracts, and the Kubernetes and compose files (infra/validate.py)
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run lint-imports
	$(UV) run python infra/validate.py

format:
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

bench: setup  ## face engine benchmark against face_recognition (CPU unless a GPU is present), JSON out
	$(UV) run python bench/faces.py

bench-search: setup  ## search: strategy, study (fits the calibration), accuracy per family, selfie quality, speed at 10k/100k/1M faces; JSON (slow)
	$(UV) run python bench/search_strategy.py
	$(UV) run python bench/identity_cache.py
	$(UV) run python bench/search_study.py
	$(UV) run python bench/search_accuracy.py
	$(UV) run python bench/search_quality.py
	$(UV) run python bench/search.py

calibrate: setup  ## re-fit photomatch/search/calibrations/<detector>.json after a change to detection, alignment or an embedder; prints the unseen half's table
	$(UV) run python bench/calibrate.py

run: setup  ## the whole stack on this machine, no Docker: Postgres, Redis, worker, beat, API, Flower
	$(UV) run photomatch run
