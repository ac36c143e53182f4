# bayesmm: every target creates the environment (.venv/) from the lock file when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   := data
OUT    := out

# JAX's persistent compilation cache for the jobs that fit models (bayesmm/compilation_cache.py says
# why), and a fixed string-hash seed: NumPyro's ELBO sums its sites in the order of a Python set, so
# with a random seed each process traces the SVI loop differently (the cache misses it, and the sum's
# rounding differs between runs); with it, a fit is the same program and the same numbers every run
demo test test-slow lab pairs: export JAX_COMPILATION_CACHE_DIR = $(CURDIR)/.jax-cache
demo test test-slow lab pairs: export PYTHONHASHSEED = 0

.PHONY: demo test test-slow pairs ray bench bench-fit bench-smoke docs chromium lab lint lock clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## demo: the main job end to end on the bundled data; outputs in out/, out/report.html first (calibrate is most of its time)
demo: $(STAMP)
	@mkdir -p $(OUT)
	$(BIN)/bayesmm ingest $(DATA)/binance-usdm-btcusdt-20240808.gz \
	    --cross-venue $(DATA)/binance-spot-btcusdt-20240808.gz --out $(OUT)/session.parquet
	$(BIN)/bayesmm inspect $(OUT)/session.parquet --plot $(OUT)/session.png
	$(BIN)/bayesmm replay $(OUT)/session.parquet --out $(OUT)/beliefs.parquet --plot $(OUT)/beliefs.png
	$(BIN)/bayesmm quote $(OUT)/session.parquet --at 23:57:00 > $(OUT)/quote_235700.txt && cat $(OUT)/quote_235700.txt
	$(BIN)/bayesmm simulate hype_selloff --quoter bayesian current_system glft --seeds 100 --json \
	    --plot '$(OUT)/selloff_{quoter}.png' > $(OUT)/selloff.json
	$(BIN)/bayesmm backtest $(OUT)/session.parquet --quoter bayesian current_system --plot '$(OUT)/backtest_{quoter}.png'
	# calibrate on the earlier spot recording, score out of sample on the later one
	$(BIN)/bayesmm ingest $(DATA)/binance-spot-btcusdt-20240808.gz --quiet --out $(OUT)/spot-20240808.parquet
	$(BIN)/bayesmm ingest $(DATA)/binance-spot-btcusdt-20240809.gz --quiet --out $(OUT)/spot-20240809.parquet
	$(BIN)/bayesmm calibrate $(OUT)/spot-20240808.parquet --holdout $(OUT)/spot-20240809.parquet --out $(OUT) --quiet \
	    --force
	$(BIN)/bayesmm check-config $(OUT)/config.toml
	# spec section 8: the quoter's thresholds by a sweep on the incident scenario, on top of the calibrated config
	$(BIN)/bayesmm sweep hype_selloff --space examples/sweep-selloff.toml --config $(OUT)/config.toml \
	    --sets 32 --batch 16 --seeds 4 --holdout-seeds 8 --out $(OUT)/sweep --write-config --quiet
	$(BIN)/bayesmm check-config $(OUT)/sweep/config.toml
	$(BIN)/bayesmm replay $(OUT)/spot-20240809.parquet --config $(OUT)/config.toml --out $(OUT)/beliefs-20240809.parquet
	$(BIN)/bayesmm score $(OUT)/spot-20240809.parquet $(OUT)/beliefs-20240809.parquet --train $(OUT)/spot-20240808.parquet
	# the calibrated quoters on the held-out session, every fill written: markout per fill (the report reads it)
	$(BIN)/bayesmm backtest $(OUT)/spot-20240809.parquet --config $(OUT)/config.toml \
	    --quoter bayesian glft glft_micro imbalance current_system --fills $(OUT)/fills.parquet
	$(BIN)/bayesmm report $(OUT)

## pairs: calibrate on each bundled real pair's earlier session, score the later one beside the peer
## (spot 0808 -> 0809, the perp's halves, COIN-M ETH 0808 -> 0809): out/pairs/pairs.md and pairs.json
pairs: $(STAMP)
	$(BIN)/bayesmm pairs --data $(DATA) --out $(OUT)/pairs --force

## ray: the optional Ray extra (`bayesmm sweep --backend ray`), from its own lock
RAY_STAMP := $(VENV)/.ray-installed
$(RAY_STAMP): $(STAMP) requirements-ray.lock
	$(BIN)/python -m pip install --quiet -r requirements.lock -r requirements-ray.lock
	@touch $(RAY_STAMP)
ray: $(RAY_STAMP)

## test: the test suite (slow statistical tests are skipped; `make test-slow` runs them); the Ray
## backend's tests need the extra, so the suite installs it. Two workers (pytest-xdist), each taking
## a whole test file at a time (--dist loadfile), so that a module-scoped fixture (a calibration, a
## Ray cluster, a simulated scenario) is built once; each notebook has its own file (tests/notebooks/)
## so the five spread over both workers. Most of the suite is compiling and dispatching, one core's
## work per process
test: $(STAMP) $(RAY_STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-slow: $(STAMP) $(RAY_STAMP)
	$(BIN)/python -m pytest -q -m slow

## bench: performance benchmarks (not part of the tests). hftbacktest (the side-by-side reference)
## pins numpy 2.2, so benchmarks run in their own environment, .venv-bench, from requirements-bench.lock
BENCH_STAMP := .venv-bench/.installed
$(BENCH_STAMP): requirements-bench.lock pyproject.toml
	@test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet --upgrade pip
	.venv-bench/bin/python -m pip install --quiet -r requirements-bench.lock
	.venv-bench/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@mkdir -p $(OUT)
	.venv-bench/bin/python -m benchmarks --json $(OUT)/bench.json

## docs: docs/benchmarks.md and docs/validation.md from out/bench.json, out/pairs/pairs.json and
## out/sweep/sweep.json (make bench, make pairs, make demo): measured numbers live only there
docs: $(STAMP)
	$(BIN)/python -m benchmarks.docs_tables

## bench-fit: the offline fits' benchmarks (NUTS and SVI at 2,000 and 20,000 bins; most of an hour)
bench-fit: $(BENCH_STAMP)
	@mkdir -p $(OUT)
	.venv-bench/bin/python -m benchmarks fit --json $(OUT)/bench-fit.json

## bench-smoke: every benchmark's code path on tiny inputs, in seconds (CI runs it so they cannot rot)
bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks --smoke

## chromium: Debian's Chromium for the report's browser test (no browser is downloaded at run time;
## the test skips with the reason when it is missing)
chromium:
	@command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) \
	    || echo "make chromium: could not install Debian's chromium; the report's browser test will skip"

## lab: JupyterLab on notebooks/ (installs jupyterlab on first use)
lab: $(STAMP)
	@$(BIN)/python -c "import jupyterlab" 2>/dev/null || $(BIN)/python -m pip install --quiet -r requirements-lab.lock
	$(BIN)/jupyter lab --notebook-dir=notebooks

lint: $(STAMP)
	$(BIN)/ruff check .

## lock: re-resolve dependencies from pyproject.toml into requirements.lock
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip && .venv-lock/bin/pip install --quiet ".[test]"
	.venv-lock/bin/pip freeze --exclude-editable | grep -v '^bayesmm' > requirements.lock
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .venv-bench $(OUT) .pytest_cache .ruff_cache .jax-cache
