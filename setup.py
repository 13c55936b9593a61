"""The optional compiled parts of chainrule (everything else is in pyproject.toml). They are
built when a C compiler and the Python headers are there; where they are not, the build
skips them with a warning and chainrule runs as plain Python, which computes the same bits
(the normalize loops: the same values to rounding).

1. The engine (``chainrule/engine``): the same Python source compiled by Cython, with the
   types of Tensor's and Op's slots and of the hot loops' locals declared beside it in
   ``.pxd`` files. The ``.py`` files are the source to read and the fallback.
2. The optimizers' one-pass update kernels, ``chainrule/optim/_fused.c``: loops NumPy cannot
   express. ``-ffp-contract=off``: the updates must round as NumPy does, a product and then a
   sum, never one fused multiply-add (GCC fuses by default where the processor has them).
   ``-fno-math-errno``: sqrt need not set errno (nothing reads it), so its loop can use the
   vector square root, which rounds the same. MSVC fuses only when asked and knows neither.
3. The normalize op's loops, ``chainrule/ops/_normalize.c`` (batch, layer and group norm in
   two or three passes): ``-fopenmp-simd`` lets its sums run in vector lanes (OpenMP's simd
   pragmas only, no threads); they agree with the NumPy rules to rounding.

``CHAINRULE_PLAIN=1`` in the environment builds none of them (the plain-Python install).
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
    unix = sys.platform != "win32"
    fused = ["-ffp-contract=off", "-fno-math-errno"] if unix else []
    normalize = ["-O3", "-fopenmp-simd", "-fno-math-errno"] if unix else []
    return [
        Extension(
            name,
            [name.replace(".", "/") + ".c"],
            include_dirs=[numpy.get_include()],
            extra_compile_args=flags,
            optional=True,
        )
        for name, flags in (
            ("chainrule.optim._fused", fused),
            ("chainrule.ops._normalize", normalize),
        )
    ]


plain = os.environ.get("CHAINRULE_PLAIN", "") not in ("", "0")
setup(ext_modules=[] if plain else _engine() + _kernels())
