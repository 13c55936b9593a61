# The two commands a new user runs: `make demo` and `make test`.
# Each makes .venv on first use and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test

.PHONY: test-peers demo examples test stress lint typecheck browser bench profile clean gallery

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# setup.py compiles the engine (chainrule/engine: the .py source with its .pxd declarations,
# by Cython), the optimizers' update kernels (chainrule/optim/_fused.c) and the normalize op's
# loops (chainrule/ops/_normalize.c) where there is a C compiler: a change to any of them
# reinstalls, so that the compiled modules are never stale.
COMPILED_SOURCES := $(wildcard chainrule/engine/*.py chainrule/engine/*.pxd) chainrule/optim/_fused.c \
  chainrule/ops/_normalize.c
# (the old compiled modules go first: an optional module that fails to build would leave the
# last one in place, stale, where test_compiled should see that the build failed)
$(STAMP): pyproject.toml setup.py $(COMPILED_SOURCES) | $(BIN)/python
	rm -f chainrule/engine/*.so chainrule/optim/*.so chainrule/ops/*.so
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The demo needs only the package and its [train] extras (progress bar, curves): installed
# without compiling (CHAINRULE_PLAIN=1; a second of training runs as well in plain Python), so
# that a fresh machine has it in well under a minute. After make test it uses that install.
DEMO_STAMP := $(VENV)/.installed-demo
$(DEMO_STAMP): pyproject.toml setup.py | $(BIN)/python
	CHAINRULE_PLAIN=1 $(BIN)/python -m pip install --quiet -e '.[train]'
	touch $(DEMO_STAMP)

# The main job: train the default MLP on the bundled digits with backprop (seeded).
demo: $(if $(wildcard $(STAMP)),$(STAMP),$(DEMO_STAMP))
	$(BIN)/chainrule train --data digits --out runs/digits

# The handout's worked examples (a)-(g), each printed next to its closed form.
examples: $(STAMP)
	$(BIN)/python examples/run_all.py

# The docs' pictures (docs/images/, by the pages' own code), then docs/gallery.md: every graph
# picture with its size and aspect ratio (tests/test_gallery.py fails when it is stale).
gallery: $(STAMP)
	$(BIN)/python docs/make_images.py
	$(BIN)/python docs/make_gallery.py

lint: $(STAMP)
	$(BIN)/ruff check chainrule tests examples conftest.py
	$(BIN)/ruff format --check chainrule tests examples conftest.py

typecheck: $(STAMP)
	$(BIN)/mypy chainrule

# The interactive page's test drives a real headless Chromium (Debian's package); playwright,
# from the test extra, uses that browser and downloads none.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) || \
	  (echo "Install Chromium (Debian: apt-get install chromium) for the browser test" && false)

# The suite runs on the compiled build; then the engine's and the optimizers' tests run again on
# the plain Python, as a machine without a C compiler runs it: a copy of the package without its
# compiled modules, imported ahead of the installed one (python -S: no .pth, so the editable
# install's finder stays out; the venv's packages come from PYTHONPATH).
PLAIN_TESTS := test_compiled test_graph test_errors test_tensor test_transforms test_kernels \
  test_optim test_ops test_compile test_nn test_check test_training test_engine_memory test_modes \
  test_vmap
PURELIB = $(shell $(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
test: $(STAMP) lint typecheck browser
	$(BIN)/python -m pytest chainrule tests --ignore=tests/peers --ignore=tests/stress
	rm -rf build/plain && mkdir -p build/plain && cp -r chainrule build/plain/
	find build/plain -name '*.so' -delete
	cd build/plain && CHAINRULE_EXPECT=plain PYTHONPATH=.:$(PURELIB) $(abspath $(BIN))/python -S \
	  -m pytest chainrule/engine $(patsubst %,../../tests/%.py,$(PLAIN_TESTS))

# The slow proofs of docs/reliability.md (tests/stress): 100 SIGKILLs in the middle of a save,
# 8 threads x 50 training steps against the serial runs. CI runs them after make test.
stress: $(STAMP)
	$(BIN)/python -m pytest tests/stress

# Peer benchmarks (not part of make test): their own venv with PyTorch 2.13.0 (a CPU build on
# the local disk), HIPS autograd, JAX, MyGrad and micrograd beside chainrule.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: benchmarks/requirements.txt pyproject.toml setup.py $(COMPILED_SOURCES)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e . -r benchmarks/requirements.txt
	touch $@

# Differential tests against PyTorch and JAX (tests/peers): every op both have, values and
# gradients in float64 to 1e-10, and the transforms. They need the peers, so they run in the
# benchmark venv, not in make test.
test-peers: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m pip install --quiet -r tests/peers/requirements.txt
	$(BENCH_VENV)/bin/python -m pytest tests/peers

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python benchmarks/run.py
	OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2 \
	  $(BENCH_VENV)/bin/python benchmarks/reference_step.py

# Where a training step's time goes (pyinstrument's Python call tree, py-spy's native stacks):
# WORKLOAD=mlp|mlp64|small|chain, LIB=chainrule|numpy|torch|...; files in benchmarks/profiles/
WORKLOAD ?= mlp
LIB ?= chainrule
profile: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python benchmarks/profile_step.py $(WORKLOAD) --lib "$(LIB)"

clean:
	rm -rf $(VENV) build *.egg-info chainrule/optim/*.so chainrule/engine/*.so chainrule/engine/*.c
