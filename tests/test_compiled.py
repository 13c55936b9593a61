"""Which build of the engine runs: compiled by Cython from the same source where a C compiler
was there at install, plain Python otherwise; ``make test`` runs the engine's tests on both.

``CHAINRULE_EXPECT=plain`` (the Makefile's second run, on a copy of the package without its
compiled modules) or ``compiled`` says which one this run must be testing, so that a run can
never test the other build by mistake."""

from __future__ import annotations

import importlib
import importlib.util
import os
import runpy
import shutil
from pathlib import Path
from typing import Any

import pytest
import setuptools

import chainrule as cr

ENGINE = ["tensor_methods", "tensor", "op", "backward"]  # what setup.py compiles


def _compiled(name: str) -> bool:
    module = importlib.import_module(f"chainrule.engine.{name}")
    return not str(module.__file__).endswith(".py")


def test_the_engine_is_the_build_this_run_expects() -> None:
    expected = os.environ.get("CHAINRULE_EXPECT", "")
    builds = {name: _compiled(name) for name in ENGINE}
    if expected == "plain":
        assert not any(builds.values()), builds
    elif expected == "compiled" or any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
        assert all(builds.values()), f"a C compiler is here but the engine is not built: {builds}"
        kernels = {
            "chainrule.optim._fused": importlib.util.find_spec("chainrule.optim._fused"),
            "chainrule.ops._normalize": importlib.util.find_spec("chainrule.ops._normalize"),
        }
        missing = [name for name, spec in kernels.items() if spec is None]
        assert not missing, f"a C compiler is here but these are not built: {missing}"
    else:  # no compiler, nothing expected: all of one kind
        assert len(set(builds.values())) == 1, builds


def test_every_compiled_module_has_its_declarations_beside_its_source() -> None:
    engine = Path(cr.__file__).parent / "engine"
    for name in ENGINE:
        assert (engine / f"{name}.py").exists() and (engine / f"{name}.pxd").exists(), name


@pytest.mark.parametrize("name", ENGINE)
def test_a_compiled_module_is_not_older_than_its_source(name: str) -> None:
    # an engine file edited after the build would otherwise be tested as it was: reinstall
    # (make does, when a source changed) or the suite tests stale code
    module = importlib.import_module(f"chainrule.engine.{name}")
    built = Path(str(module.__file__))
    if built.suffix == ".py":
        return  # the plain build: the source is what runs
    engine = built.parent
    for source in (engine / f"{name}.py", engine / f"{name}.pxd"):
        assert built.stat().st_mtime >= source.stat().st_mtime, (
            f"{built.name} is older than {source.name}: reinstall (make test does) to compile it"
        )


@pytest.mark.parametrize("name", ENGINE)
def test_the_compiled_module_keeps_the_source_s_names(name: str) -> None:
    # what other modules import from each engine module is there in both builds
    module = importlib.import_module(f"chainrule.engine.{name}")
    for exported in module.__all__:
        assert hasattr(module, exported), (name, exported)


def test_every_compiled_part_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    # what setup.py asks setuptools to build: the engine's modules and the C kernels, each
    # optional, so that a machine without a C compiler installs the plain Python instead of
    # failing (cythonize's extensions lose optional=True unless setup.py sets it again)
    pytest.importorskip("Cython")
    asked: dict[str, Any] = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: asked.update(kw))
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)  # the checkout's setup.py
    runpy.run_path("setup.py")
    built = {ext.name: ext.optional for ext in asked["ext_modules"]}
    kernels = {"chainrule.optim._fused", "chainrule.ops._normalize"}
    expected = {f"chainrule.engine.{name}" for name in ENGINE} | kernels
    assert set(built) == expected and all(built.values()), built
    monkeypatch.setenv("CHAINRULE_PLAIN", "1")  # make demo's install: nothing compiled
    runpy.run_path("setup.py")
    assert asked["ext_modules"] == []
