"""scipy's compiled kernels loaded without the packages' start-up (nqp_resilience.scipy_kernels):
the same objects and bits as ``scipy.special``'s, the same roots and errors as
``scipy.optimize.brentq``, and a later import of the packages unharmed."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.optimize
import scipy.special

from nqp_resilience import scipy_kernels

NAMES = ("stdtr", "stdtrit", "fdtrc", "fdtri", "chdtrc", "ndtr", "log_ndtr", "ndtri")


def _fresh_python(code: str) -> dict:
    """Run ``code`` in a new interpreter (no scipy imported yet); it prints one JSON object."""
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_kernels_load_without_the_packages_and_are_scipys_own_objects():
    code = f"""
import json, sys
import numpy as np
from nqp_resilience.scipy_kernels import special, brentq
names = {NAMES!r}
funcs = special(*names)
root = brentq(lambda x: x**3 - 2.0, 0.0, 2.0, xtol=1e-14)
light = {{p: p in sys.modules for p in ("scipy.special", "scipy.optimize", "scipy.stats")}}
rng = np.random.default_rng(7)
df = rng.integers(1, 400, 50).astype(float)
x = np.r_[rng.normal(0, 3, 25), rng.uniform(0, 1, 25)]
values = [f(df, x).tobytes().hex() if f.nin == 2 else None for f in funcs]
import scipy.optimize, scipy.special
same = [getattr(scipy.special, n) is f for n, f in zip(names, funcs)]
again = [getattr(scipy.special, n)(df, x).tobytes().hex() if f.nin == 2 else None
         for n, f in zip(names, funcs)]
public_root = scipy.optimize.brentq(lambda x: x**3 - 2.0, 0.0, 2.0, xtol=1e-14)
print(json.dumps({{"light": light, "same": same, "equal": values == again,
                   "root": root.hex(), "public_root": public_root.hex()}}))
"""
    got = _fresh_python(code)
    assert got["light"] == {"scipy.special": False, "scipy.optimize": False, "scipy.stats": False}
    assert all(got["same"]) and got["equal"]
    assert got["root"] == got["public_root"]


@pytest.mark.parametrize("name", NAMES)
def test_each_kernel_is_the_public_function(name):
    [func] = scipy_kernels.special(name)
    assert func is getattr(scipy.special, name)


def _cases():
    # smooth roots, a step function (the bootstrap's confidence-set endpoint), tight tolerances
    yield (lambda x: x**3 - 2.0, 0.0, 2.0, {"xtol": 1e-14})
    yield (lambda x: math.cos(x) - x, 0.0, 1.0, {})
    yield (lambda x: 1.0 if x < 0.3 else -1.0, 0.0, 1.0, {"xtol": 1e-14, "maxiter": 500})
    yield (lambda x: -1.0 if x < -17.25 else 1.0, -40.0, 3.0, {"xtol": 1e-12, "rtol": 1e-10})
    yield (lambda x: math.exp(x) - 1e6, -5.0, 30.0, {"xtol": 5e-324})


@pytest.mark.parametrize("case", list(_cases()), ids=lambda c: str(c[1:]))
def test_brentq_gives_scipys_root_to_the_bit(case):
    f, a, b, kw = case
    ours = scipy_kernels.brentq(f, a, b, **kw)
    theirs = scipy.optimize.brentq(f, a, b, **kw)
    assert ours.hex() == theirs.hex()


@pytest.mark.parametrize(
    "f, a, b, kw",
    [
        (lambda x: x, -1.0, 2.0, {"xtol": 0.0}),
        (lambda x: x, -1.0, 2.0, {"rtol": 1e-17}),
        (lambda x: x * x + 1.0, -1.0, 2.0, {}),
        (lambda x: math.nan if x > 0.5 else -1.0, 0.0, 1.0, {}),
    ],
    ids=["xtol", "rtol", "no sign change", "nan"],
)
def test_brentq_raises_scipys_errors(f, a, b, kw):
    with pytest.raises(ValueError) as ours:
        scipy_kernels.brentq(f, a, b, **kw)
    with pytest.raises(ValueError) as theirs:
        scipy.optimize.brentq(f, a, b, **kw)
    assert str(ours.value) == str(theirs.value)


def test_brentq_that_does_not_converge_raises_like_scipy():
    with pytest.raises(RuntimeError) as ours:
        scipy_kernels.brentq(lambda x: x**3 - 2.0, 0.0, 2.0, maxiter=2)
    with pytest.raises(RuntimeError) as theirs:
        scipy.optimize.brentq(lambda x: x**3 - 2.0, 0.0, 2.0, maxiter=2)
    assert str(ours.value) == str(theirs.value)


def test_falls_back_to_the_public_functions(monkeypatch):
    def unavailable(package, module):
        raise ImportError(f"no {package}.{module}")

    monkeypatch.setattr(scipy_kernels, "_compiled", unavailable)
    assert scipy_kernels.special("stdtr", "ndtri") == (scipy.special.stdtr, scipy.special.ndtri)
    f = lambda x: x**3 - 2.0  # noqa: E731
    assert scipy_kernels.brentq(f, 0.0, 2.0) == scipy.optimize.brentq(f, 0.0, 2.0)


def test_a_failed_light_load_leaves_no_stand_in():
    """A compiled module that cannot be found: the stand-in package is removed again and the
    public package is used."""
    code = """
import json, sys
from nqp_resilience import scipy_kernels
try:
    scipy_kernels._compiled("scipy.special", "_no_such_module")
    raised = False
except ImportError:
    raised = True
stand_in_left = "scipy.special" in sys.modules
import scipy.special
print(json.dumps({"raised": raised, "left": stand_in_left,
                  "real": hasattr(scipy.special, "stdtr")}))
"""
    assert _fresh_python(code) == {"raised": True, "left": False, "real": True}


def test_t_distribution_of_the_estimators_is_unchanged():
    from nqp_resilience.estimation.core import t_dist

    for t, df in [(2.1, 229), (-0.3, 12), (40.0, 1), (1e-9, 5000)]:
        p, q = t_dist(t, df)
        assert p == float(2.0 * scipy.special.stdtr(df, -abs(t)))
        assert q == float(scipy.special.stdtrit(df, 0.975))
    assert np.isfinite(q)
