"""The optional C accelerator, chainrule._native (everything else is in pyproject.toml).

It is built when a C compiler and the Python headers are there; when they are not, the build
is skipped with a warning and chainrule runs its pure-Python engine, which computes the same
gradients (chainrule/_native.c says what the accelerator covers).

``-ffp-contract=off``: the accelerator's SGD update must round as NumPy does, a product and
then a difference, never one fused multiply-add (GCC fuses by default where the processor has
them). MSVC does not fuse unless asked and does not know the flag.
"""

import sys

import numpy
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "chainrule._native",
            ["chainrule/_native.c"],
            include_dirs=[numpy.get_include()],
            extra_compile_args=[] if sys.platform == "win32" else ["-ffp-contract=off"],
            optional=True,
        )
    ]
)
