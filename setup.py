"""The optional compiled kernels, chainrule.optim._fused (everything else is in pyproject.toml).

They are built when a C compiler and the Python headers are there; when they are not, the build
is skipped with a warning and the optimizers run their NumPy lines, which give the same bits
(chainrule/optim/_fused.c says what the kernels cover).

``-ffp-contract=off``: the updates must round as NumPy does, a product and then a sum, never one
fused multiply-add (GCC fuses by default where the processor has them). ``-fno-math-errno``:
sqrt need not set errno (nothing reads it), so its loop can use the vector square root, which
rounds the same. MSVC fuses only when asked and knows neither flag.
"""

import sys

import numpy
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "chainrule.optim._fused",
            ["chainrule/optim/_fused.c"],
            include_dirs=[numpy.get_include()],
            extra_compile_args=(
                [] if sys.platform == "win32" else ["-ffp-contract=off", "-fno-math-errno"]
            ),
            optional=True,
        )
    ]
)
