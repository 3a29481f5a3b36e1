"""The replication check: each published number (resources/published.yaml) next to ours (Markdown).

For a coefficient the difference is also expressed in our standard errors, (ours − published)/
our SE, and a row is within tolerance when that is at most 2 in absolute value. The paper's own
inconsistencies are flagged, not imitated.
"""

from __future__ import annotations

import math


def _fmt(x, digits=3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.{digits}f}".replace("-0.000", "0.000")


def comparison_rows(published: dict, estimates: dict) -> list[dict]:
    """One row per published statistic: spec, statistic, published (SE), ours (SE), diff in SEs.

    ``estimates`` maps spec id to its record
    (:class:`~nqp_resilience.estimation.record.EstimateRecord`, as
    :func:`~nqp_resilience.estimation.record.read_estimates` returns, or a dict with its keys).
    """
    rows = []
    for sid, pub in published["specs"].items():
        est = estimates.get(sid)
        if est is None:
            continue
        flags = ", ".join(pub.get("flags", []))

        def add(stat, pval, pse, ours, ose, *, sid=sid, est=est, flags=flags):
            z = (ours - pval) / ose if ose and ours is not None and pval is not None else None
            rows.append(
                {
                    "spec": sid,
                    "table": est["table"],
                    "column": est.get("column", ""),
                    "statistic": stat,
                    "published": pval,
                    "published_se": pse,
                    "ours": ours,
                    "ours_se": ose,
                    "z": z,
                    "within_2se": None if z is None else abs(z) <= 2,
                    "flags": flags,
                }
            )

        if "coef" in pub:
            add(
                f"{est['regressor']}",
                pub["coef"]["value"],
                pub["coef"].get("se"),
                est["coef"],
                est["se"],
            )
        if "nqp" in pub:
            add(
                "Nqp (main effect)",
                pub["nqp"]["value"],
                None,
                est["params"].get("Nqp"),
                est["bse"].get("Nqp"),
            )
        if "const" in pub:
            add(
                "constant",
                pub["const"]["value"],
                pub["const"].get("se"),
                est["params"].get("_cons"),
                est["bse"].get("_cons"),
            )
        ex = est.get("extra", {})
        if "first_stage" in pub:
            add(
                "first stage",
                pub["first_stage"]["value"],
                pub["first_stage"].get("se"),
                ex.get("first_stage_coef"),
                ex.get("first_stage_se"),
            )
        for key, label in (("kp_lm", "KP rk LM"), ("kp_f", "KP rk Wald F"), ("r2", "R²")):
            if key in pub:
                ours = ex.get(key) if key != "r2" else est.get("r2")
                rows.append(
                    {
                        "spec": sid,
                        "table": est["table"],
                        "column": est.get("column", ""),
                        "statistic": label,
                        "published": pub[key],
                        "published_se": None,
                        "ours": ours,
                        "ours_se": None,
                        "z": None,
                        "within_2se": None,
                        "flags": flags,
                    }
                )
        if "nobs" in pub:
            rows.append(
                {
                    "spec": sid,
                    "table": est["table"],
                    "column": est.get("column", ""),
                    "statistic": "N",
                    "published": pub["nobs"],
                    "published_se": None,
                    "ours": est.get("nobs"),
                    "ours_se": None,
                    "z": None,
                    "within_2se": None,
                    "flags": flags,
                }
            )
    return rows


def replication_report(published: dict, estimates: dict) -> str:
    rows = comparison_rows(published, estimates)
    coef_rows = [r for r in rows if r["within_2se"] is not None]
    ok = sum(r["within_2se"] for r in coef_rows)
    flagged = sum(1 for r in coef_rows if not r["within_2se"] and r["flags"])
    lines = [
        "# Replication check",
        "",
        "Published numbers (`resources/published.yaml`) next to this workflow's estimates. "
        "`Δ/SE` is (ours − published) / "
        "our standard error; a coefficient is reproduced when |Δ/SE| ≤ 2. "
        "The embedded default data is one draw of a simulation that plants the published "
        "coefficients, so about 95 % of them should be within 2 SEs; what the pipeline "
        "recovers on average over many draws is in docs/monte_carlo.md. Neither is a fact "
        "about Chinese cities.",
        "",
        f"Coefficients within 2 SEs: **{ok} of {len(coef_rows)}**; "
        f"outside but touched by one of the paper's "
        f"inconsistencies below: {flagged}.",
        "",
        "| table | column | spec | statistic | published | ours | Δ/SE | within 2 SE | flags |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pub = _fmt(r["published"]) + (
            f" ({_fmt(r['published_se'])})" if r["published_se"] is not None else ""
        )
        ours = _fmt(r["ours"]) + (f" ({_fmt(r['ours_se'])})" if r["ours_se"] is not None else "")
        within = (
            ""
            if r["within_2se"] is None
            else ("yes" if r["within_2se"] else ("no (flagged)" if r["flags"] else "**no**"))
        )
        lines.append(
            f"| {r['table']} | {r['column']} | `{r['spec']}` | {r['statistic']} | {pub} | {ours} | "
            f"{_fmt(r['z'], 2)} | {within} | {r['flags']} |"
        )
    lines += ["", "## The paper's inconsistencies (flagged, not imitated)", ""]
    for key, text in published.get("inconsistencies", {}).items():
        lines.append(f"- **{key}**: {text}")
    return "\n".join(lines) + "\n"
