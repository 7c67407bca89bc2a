"""Theory made executable: Theorem 1's finite-sample expressivity construction (Section 4)
and minimum-norm kernel interpolation (Section 5) of Zhang et al. (ICLR 2017).

    fit = fit_expressivity(points, one_hot(labels, 10))   # exact, O(n log n), float64
    model = fit.module()                                  # ordinary torch module
    kfit = fit_kernel(x, one_hot(labels, 10), kernel="rbf", gamma=0.02)
    kfit.predict(x_test)
"""

from rethink.theory.expressivity import ExpressivityFit, fit_expressivity, one_hot
from rethink.theory.kernel import SOLVERS, KernelFit, choose_solver, fit_kernel, memory_needed
from rethink.theory.kernels import (
    KERNELS,
    kernel_matrix,
    kernel_matvec,
    mem_available_bytes,
    peak_rss_bytes,
)
from rethink.theory.network import SharedDirection, TwoLayerReLU, evaluate
from rethink.theory.runs import expressivity_report, kernel_report

__all__ = [
    "KERNELS",
    "SOLVERS",
    "ExpressivityFit",
    "KernelFit",
    "SharedDirection",
    "TwoLayerReLU",
    "choose_solver",
    "evaluate",
    "expressivity_report",
    "fit_expressivity",
    "fit_kernel",
    "kernel_matrix",
    "kernel_matvec",
    "kernel_report",
    "mem_available_bytes",
    "memory_needed",
    "one_hot",
    "peak_rss_bytes",
]
