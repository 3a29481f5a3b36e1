"""The NQP indicator system (``resources/indicators.yaml``, the paper's Table 1).

:func:`load_indicator_system` reads and validates the tree (criterion layer > primary >
secondary > tertiary > measure), applies direction overrides from the config, and
:func:`measure_matrix` evaluates every measure's formula on the panel.
"""

from __future__ import annotations

from dataclasses import dataclass

from nqp_resilience.data.io import read_yaml
from nqp_resilience.errors import ConfigError, DataError
from nqp_resilience.indices.formula import FormulaError, parse_formula

LEVELS = ("criterion", "primary", "secondary", "tertiary", "measure")
_CHILDREN = {
    "criterion": "primary",
    "primary": "secondary",
    "secondary": "tertiary",
    "tertiary": "measures",
}


@dataclass(frozen=True)
class Measure:
    """One measure of the indicator system with its position in the tree."""

    id: str
    formula: object
    unit: str
    direction: str
    path: tuple[str, ...]  # ids of criterion, primary, secondary, tertiary
    names: tuple[str, ...]  # names of criterion, primary, secondary, tertiary


class IndicatorSystem:
    """The whole tree; ``measures`` in file order; ``nodes`` maps (level, id) -> name."""

    def __init__(self, measures: list[Measure], nodes: dict[tuple[str, str], str], path: str):
        self.measures = measures
        self.nodes = nodes
        self.path = path

    def counts(self) -> dict[str, int]:
        """Number of distinct nodes per level (criterion 3, primary 7, secondary 18,
        tertiary 24)."""
        out = {level: sum(1 for (lv, _) in self.nodes if lv == level) for level in LEVELS[:-1]}
        out["measure"] = len(self.measures)
        return out

    @property
    def directions(self) -> dict[str, str]:
        return {m.id: m.direction for m in self.measures}

    def variables(self) -> list[str]:
        out: list[str] = []
        for m in self.measures:
            out += [v for v in m.formula.variables if v not in out]
        return out


def load_indicator_system(path, direction_overrides: dict | None = None) -> IndicatorSystem:
    """Read and validate the indicator file; apply ``{measure_id: "+"|"-"}`` overrides."""
    raw = read_yaml(path) or {}
    measures: list[Measure] = []
    nodes: dict[tuple[str, str], str] = {}
    seen: set[str] = set()

    def walk(items, level, path_ids, path_names):
        key = _CHILDREN[level]
        for item in items or []:
            for field in ("id", "name", key):
                if field not in item:
                    raise DataError(
                        path,
                        f"{level} {item.get('id', '?')!r} lacks {field!r}",
                        expected=f"id, name and {key} for every {level}",
                    )
            if (level, item["id"]) in nodes:
                raise DataError(
                    path,
                    f"duplicate {level} id {item['id']!r}",
                    hint="ids must be unique per level",
                )
            nodes[(level, item["id"])] = item["name"]
            ids, names = path_ids + (item["id"],), path_names + (item["name"],)
            if level == "tertiary":
                for m in item["measures"]:
                    _measure(m, ids, names)
            else:
                walk(item[key], LEVELS[LEVELS.index(level) + 1], ids, names)

    def _measure(m, ids, names):
        for field in ("id", "formula", "direction"):
            if field not in m:
                raise DataError(
                    path,
                    f"measure {m.get('id', '?')!r} lacks {field!r}",
                    expected="id, formula, unit and direction for every measure",
                )
        if m["id"] in seen:
            raise DataError(
                path, f"duplicate measure id {m['id']!r}", hint="measure ids must be unique"
            )
        seen.add(m["id"])
        if m["direction"] not in ("+", "-"):
            raise DataError(
                path, f"measure {m['id']!r} has direction {m['direction']!r}", expected='"+" or "-"'
            )
        try:
            formula = parse_formula(m["formula"])
        except FormulaError as exc:
            raise DataError(
                path, f"measure {m['id']!r}: {exc.problem}", column="formula", hint=exc.hint
            ) from None
        measures.append(
            Measure(m["id"], formula, str(m.get("unit", "")), m["direction"], ids, names)
        )

    walk(raw.get("criteria"), "criterion", (), ())
    if not measures:
        raise DataError(
            path, "no measures found", expected="criteria: [...] as in resources/indicators.yaml"
        )
    overrides = dict(direction_overrides or {})
    unknown = sorted(set(overrides) - {m.id for m in measures})
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], [m.id for m in measures], n=1)
        raise ConfigError(
            "entropy.directions",
            f"unknown measure id(s) {unknown}",
            hint=(f"did you mean '{close[0]}'? " if close else "")
            + f"measure ids are listed in {path}",
        )
    for key, value in overrides.items():
        if value not in ("+", "-"):
            raise ConfigError(f"entropy.directions.{key}", f"direction {value!r} is not '+' or '-'")
    measures = [
        Measure(m.id, m.formula, m.unit, overrides.get(m.id, m.direction), m.path, m.names)
        for m in measures
    ]
    return IndicatorSystem(measures, nodes, str(path))


def measure_matrix(panel, system: IndicatorSystem, source="panel"):
    """Evaluate every measure on the panel: a DataFrame with one column per measure id.

    A formula that names a variable the panel lacks raises :class:`ConfigError`; a non-finite
    result (division by zero) raises :class:`DataError` naming the city, year and measure.
    """
    import numpy as np
    import pandas as pd

    missing = [v for v in system.variables() if v not in panel.columns]
    if missing:
        raise ConfigError(
            "indicators",
            f"formulas use variable(s) {missing} that the panel does not have",
            hint="fix the formula in resources/indicators.yaml or add the variable to the codebook",
            source=system.path,
        )
    out = pd.DataFrame(index=panel.index)
    for m in system.measures:
        values = np.asarray(
            m.formula.evaluate({v: panel[v].to_numpy(dtype=float) for v in m.formula.variables}),
            dtype=float,
        )
        values = np.broadcast_to(values, (len(panel),)).copy()
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            row = panel.iloc[i]
            raise DataError(
                source,
                f"measure {m.id!r} ({m.formula.text}) is not finite ({values[i]})",
                row=f"city {row.get('city_code', '?')}, year {row.get('year', '?')}",
                column=m.id,
                hint="a denominator is zero or missing; check the raw cell or the interpolation",
            )
        out[m.id] = values
    return out
