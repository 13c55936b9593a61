"""The optional compiled parts of chainrule (everything else is in pyproject.toml). Both are
built when a C compiler and the Python headers are there; where they are not, the build
skips them with a warning and chainrule runs as plain Python, which computes the same bits.

1. The engine (``chainrule/engine``): the same Python source compiled by Cython, with the
   types of Tensor's and Op's slots and of the hot loops' locals declared beside it in
   ``.pxd`` files. The ``.py`` files are the source to read and the fallback.
2. The optimizers' one-pass update kernels, ``chainrule/optim/_fused.c``: loops NumPy cannot
   express. ``-ffp-contract=off``: the updates must round as NumPy does, a product and then a
   sum, never one fused multiply-add (GCC fuses by default where the processor has them).
   ``-fno-math-errno``: sqrt need not set errno (nothing reads it), so its loop can use the
   vector square root, which rounds the same. MSVC fuses only when asked and knows neither.

``CHAINRULE_PLAIN=1`` in the environment builds neither (the plain-Python install).
"""

import os
import sys

import numpy
from setuptools import Extension, setup

ENGINE = ["tensor_methods", "tensor", "op", "backward"]  # each with its .pxd beside it


def _engine() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:  # a build without Cython: the engine stays plain Python
        print("chainrule: Cython not found; the engine is not compiled", file=sys.stderr)
        return []
    modules = [
        Extension(f"chainrule.engine.{name}", [f"chainrule/engine/{name}.py"], optional=True)
        for name in ENGINE
    ]
    directives = {"language_level": 3, "annotation_typing": False, "binding": True}
    try:
        compiled = list(cythonize(modules, compiler_directives=directives, quiet=True))
    except Exception as err:  # Cython refused the source: build the rest, run it as Python
        print(f"chainrule: the engine is not compiled ({err})", file=sys.stderr)
        return []
    for extension in compiled:  # (cythonize's extensions do not keep optional=True)
        extension.optional = True  # no C compiler: skipped with a warning, plain Python runs
    return compiled


def _kernels() -> list[Extension]:
    flags = [] if sys.platform == "win32" else ["-ffp-contract=off", "-fno-math-errno"]
    return [
        Extension(
            "chainrule.optim._fused",
            ["chainrule/optim/_fused.c"],
            include_dirs=[numpy.get_include()],
            extra_compile_args=flags,
            optional=True,
        )
    ]


plain = os.environ.get("CHAINRULE_PLAIN", "") not in ("", "0")
setup(ext_modules=[] if plain else _engine() + _kernels())
