"""The entropy-weight method: a hand-worked example, properties, and the NQP index."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nqp_resilience.errors import EstimationError, ProjectError
from nqp_resilience.indices.entropy import (
    composite_index,
    entropy_of_columns,
    entropy_weights,
    keep_logs_finite,
    normalize,
    nqp_index,
    weights_from_entropy,
)
from nqp_resilience.indices.indicators import load_indicator_system

from conftest import ROOT


def test_hand_worked_4x2_example():
    """Two measures, four observations, ε = 0 (so 0·ln 0 = 0 is used).

    A (+) = [0, 1, 1, 2]: z = [0, .5, .5, 1], Σz = 2, p = [0, .25, .25, .5]
        e_A = −(2·.25 ln .25 + .5 ln .5)/ln 4 = (.5 ln 4 + .5 ln 2)/ln 4 = .5 + .25 = 0.75
    B (−) = [4, 4, 2, 0]: z = (4 − x)/4 = [0, 0, .5, 1], Σz = 1.5, p = [0, 0, 1/3, 2/3]
        e_B = (1/3 ln 3 + 2/3 ln 1.5)/ln 4 = (ln 3 − 2/3 ln 2)/(2 ln 2)
            = 0.7924813 − 0.3333333 = 0.4591479
    d = 1 − e = [0.25, 0.5408521], Σd = 0.7908521
    w = [0.25/0.7908521, 0.5408521/0.7908521] = [0.3161148, 0.6838852]
    S = w_A z_A + w_B z_B = [0, 0.1580574, 0.1580574 + 0.3419426, 1] = [0, 0.1580574, 0.5, 1]
    """
    df = pd.DataFrame({"A": [0.0, 1.0, 1.0, 2.0], "B": [4.0, 4.0, 2.0, 0.0]})
    # ε = 0 (0·ln 0 = 0) is reachable only through the building blocks: entropy_weights needs ε > 0
    z = np.column_stack([normalize(df["A"], "+"), normalize(df["B"], "-")])
    e = entropy_of_columns(z)
    d, w = weights_from_entropy(e)
    np.testing.assert_allclose(e, [0.75, 0.4591479], atol=1e-7)
    np.testing.assert_allclose(d, [0.25, 0.5408521], atol=1e-7)
    np.testing.assert_allclose(w, [0.3161148, 0.6838852], atol=1e-7)
    np.testing.assert_allclose(z @ w, [0.0, 0.1580574, 0.5, 1.0], atol=1e-7)
    res = entropy_weights(df, {"A": "+", "B": "-"}, variant="shift", eps=1e-12)
    np.testing.assert_allclose(res.weights, [0.3161148, 0.6838852], atol=1e-7)


def test_hand_worked_variants():
    """ε = 0.1. shift: x' = z + .1; range: x' = .1 + .8 z.

    A (+) = [0, 1, 2]: z = [0, .5, 1]
      shift: x' = [.1, .6, 1.1], Σ = 1.8, p = [1/18, 1/3, 11/18]
        e = −(1/18 ln(1/18) + 1/3 ln(1/3) + 11/18 ln(11/18))/ln 3
          = (0.1605762 + 0.3662041 + 0.3009579)/1.0986123 = 0.7534397
      range: x' = [.1, .5, .9], Σ = 1.5, p = [1/15, 1/3, 3/5]
        e = (0.1805367 + 0.3662041 + 0.3064954)/1.0986123 = 0.7766490
    """
    df = pd.DataFrame({"A": [0.0, 1.0, 2.0], "B": [1.0, 1.0, 2.0]})
    shift = entropy_weights(df, _plus(df), variant="shift", eps=0.1)
    rng = entropy_weights(df, _plus(df), variant="range", eps=0.1)
    assert shift.entropy["A"] == pytest.approx(0.7534397, abs=1e-7)
    assert rng.entropy["A"] == pytest.approx(0.7766490, abs=1e-7)
    np.testing.assert_allclose(shift.normalized["A"], [0.1, 0.6, 1.1])
    np.testing.assert_allclose(rng.normalized["A"], [0.1, 0.5, 0.9])


matrices = st.integers(3, 25).flatmap(
    lambda n: st.integers(1, 5).flatmap(
        lambda m: arrays(
            np.float64, (n, m), elements=st.floats(-1e3, 1e3, allow_nan=False, width=32)
        )
    )
)


def _plus(df):
    """Every measure "+" (entropy_weights needs a direction for each)."""
    return {c: "+" for c in df.columns}


def _frame(x):
    return pd.DataFrame(x, columns=[f"m{j}" for j in range(x.shape[1])])


def _informative(x):
    return any(np.ptp(x[:, j]) > 1e-3 * max(1.0, np.abs(x[:, j]).max()) for j in range(x.shape[1]))


@settings(max_examples=150, deadline=None)
@given(matrices, st.sampled_from(["shift", "range"]))
def test_weights_sum_to_one_and_are_non_negative(x, variant):
    assume(_informative(x))
    res = entropy_weights(_frame(x), _plus(_frame(x)), variant=variant, eps=1e-4)
    assert res.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert (res.weights >= 0).all()
    assert ((res.entropy >= -1e-12) & (res.entropy <= 1 + 1e-12)).all()


@settings(max_examples=150, deadline=None)
@given(matrices, st.floats(0.01, 100), st.floats(-1e3, 1e3), st.data())
def test_weights_invariant_to_positive_affine_rescaling(x, a, b, data):
    assume(_informative(x))
    j = data.draw(st.integers(0, x.shape[1] - 1))
    y = x.copy()
    y[:, j] = a * y[:, j] + b
    assume(np.ptp(y[:, j]) > 1e-6 * max(1.0, np.abs(y[:, j]).max()) or np.ptp(x[:, j]) == 0)
    w1 = entropy_weights(_frame(x), _plus(_frame(x))).weights
    w2 = entropy_weights(_frame(y), _plus(_frame(y))).weights
    np.testing.assert_allclose(w1, w2, rtol=1e-6, atol=1e-9)


@given(
    arrays(np.float64, st.integers(2, 30), elements=st.floats(-1e4, 1e4, allow_nan=False, width=32))
)
def test_flipping_the_direction_flips_the_normalised_measure(x):
    assume(np.ptp(x) > 0)
    np.testing.assert_allclose(normalize(x, "-"), 1.0 - normalize(x, "+"), atol=1e-12)
    eps = 1e-4
    flipped = keep_logs_finite(normalize(x, "-"), "range", eps)
    assert np.allclose(flipped, 1.0 - keep_logs_finite(normalize(x, "+"), "range", eps))


@settings(max_examples=100, deadline=None)
@given(matrices, st.floats(-100, 100))
def test_a_constant_measure_gets_weight_zero(x, c):
    assume(_informative(x))
    df = _frame(x)
    df["const"] = c
    res = entropy_weights(df, _plus(df))
    assert res.weights["const"] == 0.0
    assert res.entropy["const"] == pytest.approx(1.0)


def test_all_constant_measures_are_an_error():
    with pytest.raises(ValueError, match="every measure is constant"):
        entropy_weights(
            pd.DataFrame({"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}), {"a": "+", "b": "+"}
        )


def test_missing_values_are_an_error():
    with pytest.raises(ValueError, match="missing values"):
        entropy_weights(pd.DataFrame({"a": [1.0, np.nan, 3.0]}), {"a": "+"})


# --------------------------------------------------------------------------- the NQP index


@pytest.fixture(scope="module")
def system():
    return load_indicator_system(ROOT / "resources" / "indicators.yaml")


def _toy_panel(system, n_cities=6, years=(2010, 2011, 2012), seed=3):
    """A panel with every variable the formulas need, positive and varying."""
    rng = np.random.default_rng(seed)
    rows = [{"city_code": f"{100100 + 100 * i}", "year": y} for i in range(n_cities) for y in years]
    df = pd.DataFrame(rows)
    for v in system.variables():
        df[v] = rng.uniform(1.0, 10.0, len(df))
    return df


@pytest.mark.parametrize("aggregation", ["flat", "hierarchical"])
@pytest.mark.parametrize("scope", ["pooled", "by_year"])
def test_index_is_the_weighted_sum_and_weights_are_consistent(system, aggregation, scope):
    panel = _toy_panel(system)
    index, weights = nqp_index(panel, system, scope=scope, aggregation=aggregation)
    assert len(index) == len(panel) and index["nqp"].between(0, 1.0001).all()
    for _sc, w in weights.groupby("scope"):
        measures = w[w.level == "measure"].set_index("id")
        assert measures["weight"].sum() == pytest.approx(1.0)
        for level in ("criterion", "primary", "secondary", "tertiary"):
            assert w[w.level == level]["weight"].sum() == pytest.approx(1.0)
            # a node's global weight is the sum of its measures' weights
            depth = ["criterion", "primary", "secondary", "tertiary"].index(level)
            for node in w[w.level == level].itertuples():
                ids = [m.id for m in system.measures if m.path[depth] == node.id]
                assert node.weight == pytest.approx(measures.loc[ids, "weight"].sum())
        # local weights within each parent sum to one
        for (_level, _parent), g in w.groupby(["level", "parent"]):
            assert g["local_weight"].sum() == pytest.approx(1.0)
    if scope == "pooled":
        # Nqp = Σ_j W_j x'_j with x' the normalised measures (flat and hierarchical alike)
        from nqp_resilience.indices.indicators import measure_matrix

        m = measure_matrix(panel, system)
        x = entropy_weights(m, system.directions).normalized
        w = weights[weights.level == "measure"].set_index("id")["weight"]
        np.testing.assert_allclose(index["nqp"], x[w.index].to_numpy() @ w.to_numpy(), rtol=1e-12)
    assert len(weights[weights.level == "measure"]) == 27 * (1 if scope == "pooled" else 3)


def test_flat_layer_scores_add_up_to_the_index(system):
    index, _ = composite_index(
        __import__("nqp_resilience.indices.indicators", fromlist=["x"]).measure_matrix(
            _toy_panel(system), system
        ),
        system,
    )
    layers = [c for c in index.columns if c.startswith("nqp_")]
    assert len(layers) == 3
    np.testing.assert_allclose(index[layers].sum(axis=1), index["nqp"], rtol=1e-12)


def test_flipping_a_direction_changes_the_index(system):
    panel = _toy_panel(system)
    base, _ = nqp_index(panel, system)
    flipped_system = load_indicator_system(
        ROOT / "resources" / "indicators.yaml", {"energy_intensity": "-"}
    )
    flipped, weights = nqp_index(panel, flipped_system)
    assert not np.allclose(base["nqp"], flipped["nqp"])
    assert flipped_system.directions["energy_intensity"] == "-"


# --------------------------------------------------------------------------- invalid inputs


def test_numeric_directions_are_mapped_correctly():
    df = pd.DataFrame({"a": [1.0, 2.0, 4.0], "b": [3.0, 1.0, 0.0]})
    by_sign = entropy_weights(df, {"a": "+", "b": "-"})
    by_number = entropy_weights(df, {"a": 1, "b": -1})
    np.testing.assert_allclose(by_number.normalized, by_sign.normalized)
    np.testing.assert_allclose(by_number.weights, by_sign.weights)
    assert by_number.normalized["a"].iloc[-1] > by_number.normalized["a"].iloc[0]


@pytest.mark.parametrize(
    "directions,message",
    [
        ({"a": "+"}, r"measure\(s\) \['b'\] have no direction"),
        ({"a": "+", "b": "-", "bb": "+"}, "'bb', which is not a measure"),
        ({"a": "+", "B": "-"}, "did you mean 'b'"),
        ({"a": "+", "b": 0}, "measure 'b' has direction 0"),
        ({"a": "+", "b": True}, "measure 'b' has direction True"),
        ({"a": "+", "b": "negative"}, "measure 'b' has direction 'negative'"),
    ],
)
def test_invalid_directions_are_errors(directions, message):
    df = pd.DataFrame({"a": [1.0, 2.0, 4.0], "b": [3.0, 1.0, 0.0]})
    with pytest.raises(EstimationError, match=message) as err:
        entropy_weights(df, directions)
    assert isinstance(err.value, ProjectError) and err.value.hint


@pytest.mark.parametrize(
    "variant,eps",
    [
        ("shift", 0.0),
        ("shift", -1e-4),
        ("shift", math.inf),
        ("range", 0.0),
        ("range", 0.5),
        ("range", 0.7),
        ("shift", math.nan),
    ],
)
def test_eps_outside_its_variant_range_is_an_error(variant, eps):
    df = pd.DataFrame({"a": [1.0, 2.0, 4.0], "b": [3.0, 1.0, 0.0]})
    with pytest.raises(EstimationError, match="outside the valid range"):
        entropy_weights(df, {"a": "+", "b": "-"}, variant=variant, eps=eps)


def test_infinite_values_are_an_error_naming_measure_and_row():
    df = pd.DataFrame({"a": [1.0, np.inf, 4.0], "b": [3.0, 1.0, -np.inf]}, index=["x", "y", "z"])
    with pytest.raises(EstimationError, match="measure 'a' is infinite in row 'y'"):
        entropy_weights(df, {"a": "+", "b": "-"})
