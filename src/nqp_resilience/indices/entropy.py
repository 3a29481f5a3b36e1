"""The entropy-weight method (熵值法) and the NQP composite index (docs/indices.md).

The variant pinned here (documented in docs/indices.md):

1. Direction-aware min–max normalisation over the rows in scope:
   ``z = (x − min)/(max − min)`` for "+", ``z = (max − x)/(max − min)`` for "−";
   a constant measure (max = min) gets ``z = 0``.
2. Keep logs finite, ``variant``:
   ``shift``: ``x' = z + ε``; ``range``: ``x' = ε + (1 − 2ε)·z`` (values in [ε, 1 − ε]).
3. ``p_ij = x'_ij / Σ_i x'_ij``;  ``e_j = −(1/ln n) Σ_i p_ij ln p_ij`` with ``0·ln 0 = 0``
   (only reachable with ε = 0);  ``d_j = 1 − e_j``;  ``w_j = d_j / Σ_k d_k``.
4. Score ``S_i = Σ_j w_j x'_ij``.

A constant measure has ``p_ij = 1/n``, hence ``e_j = 1``, ``d_j = 0`` and weight 0 (it carries no
information); if every measure is constant the weights are undefined and a ``ValueError`` is
raised.

Hierarchical aggregation applies steps 3–4 level by level (measures within a tertiary indicator,
tertiary scores within a secondary indicator, … criterion scores into the index), using the
child scores as they are (they already lie in [ε, 1]); a node's global weight is the product
of the local weights on its path, so the index is still ``Σ_j W_j x'_ij``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nqp_resilience.errors import EstimationError, suggest

VARIANTS = ("shift", "range")
SCOPES = ("pooled", "by_year")
AGGREGATIONS = ("flat", "hierarchical")


@dataclass
class EntropyResult:
    """Weights and intermediate quantities of one entropy-weight computation.

    Attributes
    ----------
    weights, entropy, divergence : pandas.Series indexed by measure
    normalized : pandas.DataFrame, the x' matrix (after direction, min–max and ε)
    score : pandas.Series, ``Σ_j w_j x'_ij``
    """

    weights: object
    entropy: object
    divergence: object
    normalized: object
    score: object


def direction_sign(value, measure: str = "measure") -> str:
    """``"+"`` or ``"-"`` for a direction given as ``"+"``/``"-"`` or as the number +1/−1.

    Anything else (``0``, ``True``, ``"positive"``, …) is an :class:`EstimationError` naming the
    measure: a direction that is silently read the wrong way inverts the measure.
    """
    if isinstance(value, str) and value in ("+", "-"):
        return value
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    ):
        if value == 1:
            return "+"
        if value == -1:
            return "-"
    raise EstimationError(
        f"measure '{measure}' has direction {value!r}",
        variable=measure,
        hint='a direction is "+" (more is better) or "-" (more is worse), or +1 / -1',
    )


def check_eps(variant: str, eps) -> float:
    """The ε of a variant, validated: ``shift`` needs ε > 0 (finite logs); ``range`` needs
    0 < ε < 0.5 (ε ≥ 0.5 maps z = 0 above z = 1 and inverts every measure)."""
    if variant not in VARIANTS:
        raise EstimationError(
            f"entropy variant {variant!r} is unknown", hint=f"use one of {VARIANTS}"
        )
    try:
        e = float(eps)
    except (TypeError, ValueError):
        raise EstimationError(
            f"eps must be a number, got {eps!r}", hint="e.g. eps: 1.0e-4"
        ) from None
    ok = (0.0 < e < math.inf) if variant == "shift" else (0.0 < e < 0.5)
    if not ok:
        valid = "eps > 0" if variant == "shift" else "0 < eps < 0.5"
        raise EstimationError(
            f"eps = {eps!r} is outside the valid range of variant '{variant}' ({valid})",
            hint="the usual choice is eps = 1e-4",
        )
    return e


def normalize(values: np.ndarray, direction) -> np.ndarray:
    """Direction-aware min–max normalisation of one measure; a constant measure gives zeros.

    ``direction`` is ``"+"``/``"-"`` or +1/−1 (:func:`direction_sign`).
    """
    direction = direction_sign(direction)
    values = np.asarray(values, dtype=float)
    lo, hi = np.min(values), np.max(values)
    if hi == lo:
        return np.zeros_like(values)
    z = (values - lo) / (hi - lo)
    return z if direction == "+" else 1.0 - z


def keep_logs_finite(z: np.ndarray, variant: str, eps: float) -> np.ndarray:
    """Apply the ``shift`` (z + ε) or ``range`` (ε + (1 − 2ε) z) variant (ε checked by
    :func:`check_eps`)."""
    eps = check_eps(variant, eps)
    if variant == "shift":
        return z + eps
    if variant == "range":
        return eps + (1.0 - 2.0 * eps) * z
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def entropy_of_columns(x: np.ndarray) -> np.ndarray:
    """Entropy ``e_j = −(1/ln n) Σ_i p_ij ln p_ij`` of each column of a non-negative matrix."""
    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    if n < 2:
        raise ValueError("the entropy method needs at least two observations")
    if (x < 0).any():
        raise ValueError("the entropy method needs non-negative values")
    totals = x.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(totals > 0, x / totals, 1.0 / n)
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    return -plogp.sum(axis=0) / np.log(n)


def weights_from_entropy(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Divergence ``d = 1 − e`` and weights ``w = d / Σ d``."""
    d = 1.0 - np.asarray(e, dtype=float)
    d = np.where(np.abs(d) < 1e-15, 0.0, d)
    total = d.sum()
    if total <= 0:
        raise ValueError("every measure is constant: entropy weights are undefined")
    return d, d / total


def entropy_weights(
    df, directions: dict, variant: str = "shift", eps: float = 1e-4
) -> EntropyResult:
    """Entropy weights of the columns of ``df`` (public API: docs/design.md#python-api).

    Parameters
    ----------
    df : pandas.DataFrame
        One column per measure, one row per observation (no missing values).
    directions : dict
        ``{column: "+" | "-"}`` (or +1 / −1) for every column; a column without a direction, a
        key that is not a column, or any other value is an error.
    variant : {"shift", "range"}
        How logs are kept finite (see the module docstring).
    eps : float
        The ε of the variant (default 1e-4): ``shift`` needs ε > 0, ``range`` 0 < ε < 0.5.

    Returns
    -------
    EntropyResult

    Raises
    ------
    EstimationError
        (a :class:`~nqp_resilience.errors.ProjectError` and a ``ValueError``) for the invalid
        inputs above, missing or infinite values, or every measure constant.
    """
    import pandas as pd

    check_eps(variant, eps)
    cols = list(df.columns)
    unknown = [k for k in directions if k not in cols]
    if unknown:
        close = suggest(unknown[0], cols, n=1)
        raise EstimationError(
            f"direction given for {unknown[0]!r}, which is not a measure (column) of the data",
            variable=unknown[0],
            hint=(f"did you mean '{close[0]}'? " if close else "") + f"the measures are {cols}",
        )
    lacking = [c for c in cols if c not in directions]
    if lacking:
        raise EstimationError(
            f"measure(s) {lacking} have no direction",
            variable=lacking[0],
            hint='give every measure a direction: "+" (more is better) or "-" (more is worse)',
        )
    signs = {c: direction_sign(directions[c], c) for c in cols}
    if df.isna().any().any():
        col = df.columns[df.isna().any()][0]
        raise EstimationError(
            f"measure {col!r} has missing values; the entropy method needs complete data",
            variable=col,
            hint="impute or drop the rows with missing measures first",
        )
    for c in cols:
        inf = np.isinf(np.asarray(df[c], dtype=float))
        if inf.any():
            row = df.index[np.flatnonzero(inf)[0]]
            raise EstimationError(
                f"measure {c!r} is infinite in row {row!r} ({int(inf.sum())} infinite value(s))",
                variable=c,
                hint="an infinite ratio usually means a zero denominator; "
                "fix the input or drop the row",
            )
    x = (
        np.column_stack(
            [keep_logs_finite(normalize(df[c].to_numpy(), signs[c]), variant, eps) for c in cols]
        )
        if cols
        else np.empty((len(df), 0))
    )
    e = entropy_of_columns(x)
    d, w = weights_from_entropy(e)
    normalized = pd.DataFrame(x, index=df.index, columns=cols)
    return EntropyResult(
        weights=pd.Series(w, index=cols),
        entropy=pd.Series(e, index=cols),
        divergence=pd.Series(d, index=cols),
        normalized=normalized,
        score=pd.Series(x @ w, index=df.index),
    )


def _group_scores(scores, groups: dict[str, list[str]]):
    """One entropy step: for each parent, weights of its children's score columns and the parent
    score."""
    import pandas as pd

    parent_scores = {}
    local = {}
    for parent, children in groups.items():
        block = scores[children].to_numpy()
        if len(children) == 1:
            e, d, w = np.array([np.nan]), np.array([np.nan]), np.array([1.0])
        else:
            e = entropy_of_columns(block)
            d, w = weights_from_entropy(e)
        parent_scores[parent] = block @ w
        for child, ei, di, wi in zip(children, e, d, w, strict=True):
            local[child] = (ei, di, wi)
    return pd.DataFrame(parent_scores, index=scores.index), local


def composite_index(measures, system, *, variant="shift", eps=1e-4, aggregation="flat"):
    """The NQP index of one scope (all rows pooled, or one year).

    Returns
    -------
    scores : DataFrame with ``nqp`` and one score column per criterion layer
        (``nqp_<criterion id>``: the layer's contribution to the index under flat aggregation,
        the layer's own score under hierarchical aggregation).
    weights : DataFrame, one row per node of the tree and per measure
        (level, id, name, parent, entropy, divergence, local_weight, weight).
    """
    import pandas as pd

    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    directions = system.directions
    base = entropy_weights(measures, directions, variant, eps)
    rows = []
    levels = ["criterion", "primary", "secondary", "tertiary"]
    if aggregation == "flat":
        weight = base.weights
        for m in system.measures:
            parent_total = sum(weight[o.id] for o in system.measures if o.path == m.path)
            rows.append(
                (
                    "measure",
                    m.id,
                    m.names[-1],
                    m.path[-1],
                    base.entropy[m.id],
                    base.divergence[m.id],
                    weight[m.id] / parent_total if parent_total > 0 else np.nan,
                    weight[m.id],
                )
            )
        node_weight = {}
        for depth, level in enumerate(levels):
            for (lv, node_id), _name in system.nodes.items():
                if lv != level:
                    continue
                w = sum(weight[m.id] for m in system.measures if m.path[depth] == node_id)
                node_weight[(level, node_id)] = w
        for depth, level in enumerate(levels):
            for (lv, node_id), name in system.nodes.items():
                if lv != level:
                    continue
                parent = _parent(system, depth, node_id)
                ptotal = node_weight[(levels[depth - 1], parent)] if depth else 1.0
                w = node_weight[(level, node_id)]
                rows.append(
                    (
                        level,
                        node_id,
                        name,
                        parent,
                        np.nan,
                        np.nan,
                        w / ptotal if ptotal > 0 else np.nan,
                        w,
                    )
                )
        x = base.normalized
        scores = pd.DataFrame({"nqp": x.to_numpy() @ weight.to_numpy()}, index=measures.index)
        for crit in [nid for (lv, nid) in system.nodes if lv == "criterion"]:
            ids = [m.id for m in system.measures if m.path[0] == crit]
            scores[f"nqp_{crit}"] = x[ids].to_numpy() @ weight[ids].to_numpy()
    else:
        local: dict[tuple[str, str], tuple] = {}
        current = base.normalized
        groups = {}
        for m in system.measures:
            groups.setdefault(m.path[-1], []).append(m.id)
        level_scores = {}
        for depth in range(len(levels) - 1, -1, -1):
            level = levels[depth]
            parent_scores, loc = _group_scores(current, groups)
            child_level = "measure" if level == "tertiary" else levels[depth + 1]
            for child, vals in loc.items():
                local[(child_level, child)] = (*vals, _parent_of(system, child_level, child))
            level_scores[level] = parent_scores
            current = parent_scores
            if depth:
                groups = {}
                for node_id in current.columns:
                    groups.setdefault(_parent(system, depth, node_id), []).append(node_id)
        top, loc = _group_scores(current, {"nqp": list(current.columns)})
        for child, vals in loc.items():
            local[("criterion", child)] = (*vals, "nqp")
        # global weight = product of local weights along the path
        glob = {}
        for m in system.measures:
            w = local[("measure", m.id)][2]
            for depth in range(len(levels) - 1, -1, -1):
                w *= local[(levels[depth], m.path[depth])][2]
            glob[m.id] = w
        for m in system.measures:
            e, d, lw, parent = local[("measure", m.id)]
            rows.append(("measure", m.id, m.names[-1], parent, e, d, lw, glob[m.id]))
        for depth, level in enumerate(levels):
            for (lv, node_id), name in system.nodes.items():
                if lv != level:
                    continue
                e, d, lw, parent = local[(level, node_id)]
                gw = sum(glob[m.id] for m in system.measures if m.path[depth] == node_id)
                rows.append((level, node_id, name, parent, e, d, lw, gw))
        scores = pd.DataFrame({"nqp": top["nqp"].to_numpy()}, index=measures.index)
        for crit in level_scores["criterion"].columns:
            scores[f"nqp_{crit}"] = level_scores["criterion"][crit].to_numpy()
    weights = pd.DataFrame(
        rows,
        columns=[
            "level",
            "id",
            "name",
            "parent",
            "entropy",
            "divergence",
            "local_weight",
            "weight",
        ],
    )
    order = {lv: i for i, lv in enumerate(levels + ["measure"])}
    weights["_o"] = weights["level"].map(order)
    weights = weights.sort_values("_o", kind="mergesort").drop(columns="_o").reset_index(drop=True)
    return scores, weights


def _parent(system, depth: int, node_id: str) -> str:
    """Parent id of a node at ``depth`` (0 = criterion, whose parent is the index)."""
    if depth == 0:
        return "nqp"
    for m in system.measures:
        if m.path[depth] == node_id:
            return m.path[depth - 1]
    raise KeyError(node_id)


def _parent_of(system, level: str, node_id: str) -> str:
    if level == "measure":
        return next(m.path[-1] for m in system.measures if m.id == node_id)
    return _parent(system, ["criterion", "primary", "secondary", "tertiary"].index(level), node_id)


def nqp_index(panel, system, *, scope="pooled", aggregation="flat", variant="shift", eps=1e-4):
    """The NQP index for the panel under the configured scope.

    Returns ``(index, weights)``: ``index`` has city_code, year, nqp and the criterion scores;
    ``weights`` has a ``scope`` column (``pooled`` or the year) before the columns of
    :func:`composite_index`.
    """
    import pandas as pd

    from nqp_resilience.indices.indicators import measure_matrix

    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    measures = measure_matrix(panel, system)
    keys = panel[["city_code", "year"]].reset_index(drop=True)
    measures = measures.reset_index(drop=True)
    if scope == "pooled":
        scores, weights = composite_index(
            measures, system, variant=variant, eps=eps, aggregation=aggregation
        )
        weights.insert(0, "scope", "pooled")
        index = pd.concat([keys, scores], axis=1)
    else:
        parts, wparts = [], []
        for year, rows in keys.groupby("year", sort=True):
            scores, weights = composite_index(
                measures.loc[rows.index], system, variant=variant, eps=eps, aggregation=aggregation
            )
            weights.insert(0, "scope", str(year))
            parts.append(pd.concat([rows, scores], axis=1))
            wparts.append(weights)
        index = (
            pd.concat(parts)
            .sort_values(["city_code", "year"], kind="mergesort")
            .reset_index(drop=True)
        )
        weights = pd.concat(wparts, ignore_index=True)
    return index, weights
