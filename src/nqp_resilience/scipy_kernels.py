"""scipy's compiled distribution functions and Brent root finder, without the start-up of
``scipy.special`` and ``scipy.optimize``.

A workflow job needs a handful of scipy's compiled kernels: the t, F, chi-square and normal
distribution functions (``stdtr``, ``stdtrit``, ``fdtrc``, ``fdtri``, ``chdtrc``, ``ndtr``,
``log_ndtr``, ``ndtri``) and Brent's root finder. Importing ``scipy.special`` costs about 0.14 s
(its array-API layer imports ``numpy.f2py``, ``numpy.testing`` and ``numpy.ma``) and
``scipy.optimize`` about 0.3 s, while the compiled modules that hold these kernels
(``scipy.special._ufuncs``, ``scipy.optimize._zeros``) load in 0.02–0.03 s.

This module loads the compiled module alone: while it is imported, a stand-in without an
``__init__`` takes the subpackage's place in ``sys.modules``, and it is removed at once (a lock
serialises the package's own loads; a job imports scipy from one thread). The
functions returned are the very objects that ``scipy.special`` exports, so every result has the
same bits; :func:`brentq` makes the same checks and the same call as ``scipy.optimize.brentq``. A
later ``import scipy.special`` or ``import scipy.optimize`` runs the package normally and reuses
the compiled module. When the subpackage is already imported, or the compiled module cannot be
loaded this way (another scipy layout), the public scipy functions are used instead.
"""

from __future__ import annotations

import importlib
import operator
import sys
import threading
import types

_LOCK = threading.Lock()
#: ``scipy.optimize.brentq``'s smallest relative tolerance.
BRENTQ_RTOL = 4 * 2.220446049250313e-16


def _compiled(package: str, module: str) -> types.ModuleType:
    """``package.module`` imported without running ``package``'s ``__init__`` (see above)."""
    full = f"{package}.{module}"
    with _LOCK:
        if full in sys.modules:
            return sys.modules[full]
        if package in sys.modules:
            return importlib.import_module(full)
        parent = importlib.import_module(package.rpartition(".")[0])
        stand_in = types.ModuleType(package)
        stand_in.__path__ = [f"{path}/{package.rpartition('.')[2]}" for path in parent.__path__]
        sys.modules[package] = stand_in
        try:
            return importlib.import_module(full)
        finally:
            if sys.modules.get(package) is stand_in:
                del sys.modules[package]


def special(*names: str) -> tuple:
    """The ``scipy.special`` functions ``names``, e.g. ``stdtr, stdtrit = special("stdtr",
    "stdtrit")``: the same objects as ``scipy.special``'s."""
    try:
        ufuncs = _compiled("scipy.special", "_ufuncs")
        return tuple(getattr(ufuncs, name) for name in names)
    except (ImportError, AttributeError):
        public = importlib.import_module("scipy.special")
        return tuple(getattr(public, name) for name in names)


def brentq(
    f, a: float, b: float, *, xtol: float = 2e-12, rtol: float = BRENTQ_RTOL, maxiter: int = 100
) -> float:
    """``scipy.optimize.brentq(f, a, b, xtol=xtol, rtol=rtol, maxiter=maxiter)``: the same
    argument checks, the same error on a NaN function value and the same compiled solver."""
    try:
        zeros = _compiled("scipy.optimize", "_zeros")
        solve = zeros._brentq
    except (ImportError, AttributeError):
        from scipy.optimize import brentq as public

        return public(f, a, b, xtol=xtol, rtol=rtol, maxiter=maxiter)
    maxiter = operator.index(maxiter)
    if xtol <= 0:
        raise ValueError(f"xtol too small ({xtol:g} <= 0)")
    if rtol < BRENTQ_RTOL:
        raise ValueError(f"rtol too small ({rtol:g} < {BRENTQ_RTOL:g})")

    def checked(x):
        fx = f(x)
        if fx != fx:
            raise ValueError(f"The function value at x={x} is NaN; solver cannot continue.")
        return fx

    return solve(checked, a, b, xtol, rtol, maxiter, (), False, True)
