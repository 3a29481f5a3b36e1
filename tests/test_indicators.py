"""The indicator system file (the paper's Table 1) and formula parsing."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from nqp_resilience.data.codebook import Codebook
from nqp_resilience.errors import ConfigError, DataError
from nqp_resilience.indices.formula import FormulaError, parse_formula
from nqp_resilience.indices.indicators import load_indicator_system, measure_matrix

from conftest import CODEBOOK, ROOT

INDICATORS = ROOT / "resources" / "indicators.yaml"


def test_table_1_in_full():
    system = load_indicator_system(INDICATORS)
    assert system.counts() == {
        "criterion": 3,
        "primary": 7,
        "secondary": 18,
        "tertiary": 24,
        "measure": 27,
    }
    per_tertiary = Counter(m.path[-1] for m in system.measures)
    assert per_tertiary["pollution_control"] == 2  # COD/GDP and SO2/GDP
    assert per_tertiary["traditional_infrastructure"] == 3  # road, rail, fibre
    assert all(
        n == 1
        for k, n in per_tertiary.items()
        if k not in ("pollution_control", "traditional_infrastructure")
    )
    d = system.directions
    assert d["cod_intensity"] == d["so2_intensity"] == "-"
    assert d["energy_intensity"] == "+"  # as the paper marks it
    assert sum(v == "-" for v in d.values()) == 2
    # every variable a formula uses is a canonical variable of the codebook
    known = set(Codebook(CODEBOOK).variables())
    assert set(system.variables()) <= known


def test_direction_overrides():
    system = load_indicator_system(INDICATORS, {"energy_intensity": "-", "cod_intensity": "+"})
    assert (
        system.directions["energy_intensity"] == "-" and system.directions["cod_intensity"] == "+"
    )
    with pytest.raises(ConfigError, match="did you mean 'energy_intensity'") as exc:
        load_indicator_system(INDICATORS, {"energy_intensty": "-"})
    assert exc.value.key == "entropy.directions"
    with pytest.raises(ConfigError, match="is not"):
        load_indicator_system(INDICATORS, {"energy_intensity": "down"})


@pytest.mark.parametrize(
    "text, names, value",
    [
        ("gdp / population", ("gdp", "population"), 2.0),
        ("a / (b + c) * 100", ("a", "b", "c"), 50.0),
        ("-a + 3", ("a",), 1.0),
    ],
)
def test_formula_parsing(text, names, value):
    f = parse_formula(text)
    assert f.variables == names
    data = {"gdp": 10.0, "population": 5.0, "a": 2.0, "b": 1.0, "c": 3.0}
    assert f.evaluate(data) == pytest.approx(value)


@pytest.mark.parametrize(
    "text",
    ["__import__('os').system('true')", "a.b", "a ** 2", "f(a)", "a if b else c", "'text'", "a +"],
)
def test_formula_rejects_anything_but_arithmetic(text):
    with pytest.raises(FormulaError):
        parse_formula(text)


def test_bad_indicator_files(tmp_path):
    bad = tmp_path / "ind.yaml"
    bad.write_text(
        "criteria:\n  - id: a\n    name: A\n    primary:\n      - id: b\n        name: B\n"
        "        secondary:\n          - id: c\n            name: C\n            tertiary:\n"
        "              - id: d\n                name: D\n                measures:\n"
        "                  - {id: m, formula: 'x.y', direction: '+'}\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError, match="measure 'm'") as err:
        load_indicator_system(bad)
    assert (
        err.value.column == "formula" and err.value.hint and err.value.hint not in err.value.problem
    )
    bad.write_text(
        bad.read_text(encoding="utf-8").replace("'x.y', direction: '+'", "'x', direction: 'up'"),
        encoding="utf-8",
    )
    with pytest.raises(DataError, match="direction 'up'"):
        load_indicator_system(bad)


def test_measure_matrix_errors():
    system = load_indicator_system(INDICATORS)
    panel = pd.DataFrame({"city_code": ["110000"], "year": [2010], "gdp": [1.0]})
    with pytest.raises(ConfigError, match="panel does not have"):
        measure_matrix(panel, system)
    full = pd.DataFrame({v: [1.0, 2.0] for v in system.variables()})
    full["city_code"], full["year"] = ["110000", "120000"], [2010, 2010]
    full.loc[1, "population"] = 0.0
    with pytest.raises(DataError) as exc:
        measure_matrix(full, system)
    assert "city 120000, year 2010" in str(exc.value) and "gdp_per_capita" in str(exc.value)
    full.loc[1, "population"] = 4.0
    m = measure_matrix(full, system)
    assert list(m.columns) == [x.id for x in system.measures]
    assert m.loc[1, "gdp_per_capita"] == 0.5 and m.loc[1, "entrepreneurial_activity"] == 50.0
    np.testing.assert_allclose(m["cod_intensity"], [1e8, 1e8])  # cod 1/1 and 2/2 per CNY, × 1e8
