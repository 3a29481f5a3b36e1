"""Seeded simulator of every raw extract (docs/design.md#raw-inputs): the default data.

Usage::

    python -m nqp_resilience.sim.simulate --seed 20240601 \
        --params resources/simulation/params.yaml --out resources/raw

    # a larger panel: 2,800 units in the expected sample over 2002-2021 (docs/simulation.md)
    python -m nqp_resilience.sim.simulate --seed 1 --units 2800 --years 2002-2021 \
        --params resources/simulation/params.yaml --out /path/to/raw

The data-generating process is structural (``docs/simulation.md``): a latent city-level NQP
path drives the Table 1 indicators, and GDP growth, unemployment, the industrial structure, the
mechanism variables and the instruments are generated from it with the effects of the
parameter file. The output is written in the real formats (Chinese headers and units, mixed
encodings, one xlsx year, placeholders, thousands separators, full-width digits, missing cells,
an old city name, 地区 codes before 2011) and is byte-identical for a given seed and parameter
file.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

from nqp_resilience.data.cities import read_attributes
from nqp_resilience.data.codebook import Codebook
from nqp_resilience.data.io import read_yaml, write_bytes, write_text
from nqp_resilience.indices.nqp_text import read_keywords

# Stream ids: each component draws from its own generator, so changing one block of the DGP
# does not shift the random numbers of the others.
_STREAMS = {
    name: i
    for i, name in enumerate(
        [
            "city",
            "nqp",
            "ratios",
            "indicators",
            "outcomes",
            "missing",
            "format",
            "reports",
            "structure",
            "sparse",
            "gdp",
            "mechanisms",
            "employment",
        ]
    )
}

_DECIMALS = {
    "万元": 0,
    "万美元": 0,
    "万人": 2,
    "人": 0,
    "个": 0,
    "件": 0,
    "台": 0,
    "吨": 0,
    "%": 2,
    "公里": 0,
    "元": 0,
    "index": 4,
    "万户": 2,
    "人年": 0,
    "万吨标准煤": 2,
    "万标立方米/时": 1,
    "米": 1,
    "部/万人": 2,
    "元/美元": 4,
}

_FULLWIDTH = str.maketrans("0123456789.,", "０１２３４５６７８９．，")

#: The years the attribute table's ``*_2010_2021`` columns describe.
TABLE_YEARS = (2010, 2021)
#: Synthetic unit codes are ``9bcccc``: the leading 9 is no province's first digit (GB/T 2260
#: province codes are 11-65, 71, 81 and 82, and every real code, at any level, starts with its
#: province's two digits), so no synthetic code can be a real one; ``b`` (0-9) is a block and
#: ``cccc`` (0001-9999) a serial, so a code never ends in 0000, which the workflow reads as a
#: province total. At most 10 x 9,999 synthetic units.
SYNTHETIC_PREFIX = "9"
MAX_SYNTHETIC_UNITS = 10 * 9999
#: The generator of the synthetic units' donors: fixed, so that the unit list depends on the
#: number of units and the period only, not on the simulation seed (one attribute table serves
#: every seed, as the real list does).
UNITS_SEED = 2260
#: Columns of a synthetic unit copied from its donor city.
DONOR_COLUMNS = (
    "province_code",
    "province_name",
    "region",
    "unit_type",
    "is_municipality",
    "is_provincial_capital",
    "is_sub_provincial",
    "is_larger_city",
    "adm_high",
    "is_resource_based",
    "resource_type",
    "resource_type_zh",
)


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS[stream]])


def _expected_clipped(mu, sd: float, lo: float, hi: float):
    """E[clip(X, lo, hi)] for X ~ N(mu, sd^2), elementwise."""
    from nqp_resilience.scipy_kernels import special

    [ndtr] = special("ndtr")

    if sd <= 0:
        return np.clip(mu, lo, hi)
    a, b = (lo - mu) / sd, (hi - mu) / sd
    pdf = lambda z: np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)  # noqa: E731
    return lo * ndtr(a) + hi * ndtr(-b) + mu * (ndtr(b) - ndtr(a)) + sd * (pdf(a) - pdf(b))


def _lognormal(rng, n_shape, mean, sd, z=None, load=0.0, persistence=0.0, city_index=None):
    """Log-normal draws with the given mean and sd whose log loads on ``z``.

    ``persistence`` is the share of the residual log variance that is a city effect.
    """
    sigma2 = np.log1p((sd / mean) ** 2)
    resid2 = max(sigma2 - load**2, 0.05 * sigma2)
    mu = np.log(mean) - 0.5 * (load**2 + resid2)
    noise = rng.standard_normal(n_shape)
    if persistence and city_index is not None:
        city_effect = rng.standard_normal(city_index.max() + 1)[city_index]
        noise = np.sqrt(persistence) * city_effect + np.sqrt(1 - persistence) * noise
    log_x = mu + np.sqrt(resid2) * noise
    if z is not None:
        log_x = log_x + load * z
    return np.exp(log_x)


class Simulation:
    """The simulated city panel before formatting (all values in raw units)."""

    def __init__(
        self, params: dict, attributes: list[dict], seed: int, codebook=None, indicators=None
    ):
        self.p = params
        self.seed = seed
        self.cities = attributes
        self.t0, self.t1 = params["years"]["start"], params["years"]["end"]
        self.years = np.arange(self.t0, self.t1 + 1)
        self.n, self.T = len(attributes), len(self.years)
        self.exists = np.array(
            [
                [
                    int(c["first_year_2010_2021"]) <= y <= int(c["last_year_2010_2021"])
                    for y in self.years
                ]
                for c in attributes
            ]
        )
        self.city_idx = np.repeat(np.arange(self.n), self.T).reshape(self.n, self.T)
        self.values: dict[str, np.ndarray] = {}  # canonical name -> (n, T) in raw units
        # share of the expected sample's cells at a bound of their outcome (the bound bends the
        # planted slope; tests keep it small)
        self.clipped: dict[str, float] = {}
        self.codebook, self.indicators = codebook, indicators
        self._control_values = None  # the paper's controls, computed once (_controls)
        self._city()
        self._nqp()
        self._sparse()
        self._gdp()
        self._ratios_and_levels()
        self._static()
        self._mechanism_parts()
        self._mechanisms(
            self.nqp, self.nqp[self.in_sample].mean()
        )  # provisional: the index needs them
        self._index()
        self._outcomes()

    # --------------------------------------------------------------- city characteristics
    def _city(self):
        p, rng = self.p["city"], _rng(self.seed, "city")
        region = np.array([c["region"] for c in self.cities])
        adm = np.array([int(c["adm_high"] or 0) for c in self.cities])
        d = p["development"]
        dev = (
            np.array([d[r] for r in region])
            + d["adm_high"] * adm
            + d["noise_sd"] * rng.standard_normal(self.n)
        )
        self.z_dev = (dev - dev.mean()) / dev.std()
        self.log_pop = (
            p["log_population_mean"]
            + 0.3 * adm
            + p["log_population_sd"] * rng.standard_normal(self.n)
        )
        log_relief = (
            p["log_relief_mean"]
            + p["relief_west"] * (region == "west")
            + p["relief_east"] * (region == "east")
            + p["log_relief_sd"] * rng.standard_normal(self.n)
        )
        self.relief = np.exp(log_relief)
        log_tel = (
            p["log_telephones_mean"]
            + p["telephones_development"] * self.z_dev
            + p["log_telephones_sd"] * rng.standard_normal(self.n)
        )
        self.telephones = np.exp(log_tel)
        self.region = region
        trend = (1 + p["population_growth"]) ** (self.years - self.t0)
        self.pop = (
            np.exp(self.log_pop)[:, None]
            * trend[None, :]
            * np.exp(p.get("population_noise_sd", 0.01) * rng.standard_normal((self.n, self.T)))
        )

    # --------------------------------------------------------------- latent NQP
    def _nqp(self):
        p, rng = self.p["nqp"], _rng(self.seed, "nqp")
        base = p["base_mean"] + p["base_sd"] * self.z_dev
        slope = p["slope_mean"] + p["slope_sd"] * rng.standard_normal(self.n)
        shocks = np.zeros((self.n, self.T))
        e = rng.standard_normal((self.n, self.T)) * p["shock_sd"]
        for t in range(self.T):
            shocks[:, t] = e[:, t] + (p["shock_rho"] * shocks[:, t - 1] if t else 0.0)
        frac = (self.years - self.t0) / max(self.T - 1, 1)
        # the Internet instrument (1984 phones per 100 people x national users in t-1, 10^8) moves
        # NQP linearly, so its first-stage coefficient is `internet_effect` on the index scale
        users = self.p["national"]["internet_users_1e4"]
        lagged = np.array([float(users[int(y) - 1]) for y in self.years]) / 1e4
        self.internet = (self.telephones / 100.0)[:, None] * lagged[None, :]
        # Relief x trend (km x years since the first year) moves it linearly too
        relief_trend = (self.relief / 1000.0)[:, None] * (self.years - self.t0)[None, :]
        nqp = (
            base[:, None]
            + slope[:, None] * frac[None, :]
            + shocks
            + p["internet_effect"] * (self.internet - self.internet[:, :1])
            + p["relief_effect"] * relief_trend
        )
        self.nqp = np.clip(nqp, *p["clip"])
        self.z_nqp = (self.nqp - self.nqp.mean()) / self.nqp.std()
        self.z_city = np.repeat(self.z_nqp.mean(axis=1, keepdims=True), self.T, axis=1)

    # --------------------------------------------------------------- outcomes
    def _sparse(self):
        """Cities with sparse coverage in the extracts (the sample rule drops them)."""
        m, rng = self.p["missing"], _rng(self.seed, "sparse")
        eligible = np.array(
            [
                c["changed_2011"] != "1" and c["n_years_2010_2021"] == str(self.T)
                for c in self.cities
            ]
        )
        weights = np.array([m["sparse_region_weight"][r] for r in self.region]) * eligible
        k = min(int(m["sparse_cities"]), int(eligible.sum()))
        sparse = (
            rng.choice(self.n, size=k, replace=False, p=weights / weights.sum())
            if k
            else np.array([], int)
        )
        self.sparse_idx = np.sort(sparse)
        self.sparse_cities = sorted(self.cities[i]["city_code"] for i in sparse)
        self.in_sample = eligible.copy()
        self.in_sample[self.sparse_idx] = False

    def _gdp(self):
        """ln GDP per capita: a Table 1 measure and the GDP control."""
        rng = _rng(self.seed, "gdp")
        lp = self.p["ratios"]["log_gdp_per_capita"]
        resid_sd = np.sqrt(max(lp["sd"] ** 2 - lp["load"] ** 2, 0.01))
        city_lp = rng.standard_normal(self.n)
        # controls load on the city's NQP level, not its year-to-year movements: otherwise they
        # would proxy the regressor within cities and make the paper's controls "bad controls"
        # ``within_load``: GDP per capita also moves with the city's NQP within the city, so the
        # GDP control changes the Resil coefficient (Table 3 (1) against (2))
        self.log_gdp_pc = (
            lp["mean"]
            + lp["load"] * self.z_city
            + lp.get("within_load", 0.0) * (self.z_nqp - self.z_city)
            + resid_sd
            * (
                0.85 * city_lp[:, None]
                + np.sqrt(1 - 0.85**2) * rng.standard_normal((self.n, self.T))
            )
        )

    def _canonical_panel(self):
        """The simulated values in canonical units as a long DataFrame (city-major, year-minor)."""
        import pandas as pd

        cols = {
            "city_code": np.repeat([c["city_code"] for c in self.cities], self.T),
            "year": np.tile(self.years, self.n),
        }
        for src in ("yearbook", "patents", "innovation"):
            for name, var in self.codebook[src].variables.items():
                if name in self.values:
                    cols[name] = (self.values[name] * var.factor).ravel()
        nat = self.p["national"]
        cols["national_employment"] = np.tile(
            [float(nat["employment_1e4"][int(y)]) * 1e4 for y in self.years], self.n
        )
        return pd.DataFrame(cols)

    def _index(self):
        """The NQP index the workflow will compute (default entropy settings, expected sample).

        Outcomes respond to measured NQP: planting the published effects on this index makes
        the pipeline's estimates comparable with the paper's coefficients. Cities outside the
        expected sample (dropped by the sample rules) use the latent path.
        """
        from nqp_resilience.indices.entropy import nqp_index

        self.q = self.nqp.copy()
        if self.codebook is None or self.indicators is None:
            return
        panel = self._canonical_panel()
        keep = np.repeat(self.in_sample, self.T)
        index, _ = nqp_index(panel[keep].reset_index(drop=True), self.indicators)
        self.q[self.in_sample] = index["nqp"].to_numpy().reshape(-1, self.T)

    # ------------------------------------------------------------ planted effects, measured
    def _within(self, x, trends: bool = False):
        """x minus its city mean and its year mean, plus the grand mean (means over the expected
        sample): the variation that city and year fixed effects leave. Cities outside the
        sample are demeaned by their own city mean and the sample's year means. With ``trends``,
        each city's linear trend in the year is taken out as well: on a balanced panel, that is
        the variation city effects, year effects and city-specific linear trends leave (the
        year-demeaned trends' slopes sum to zero over the sample, so the year effects stay
        fitted)."""
        s = self.in_sample
        year = x[s].mean(axis=0, keepdims=True)
        out = x - x.mean(axis=1, keepdims=True) - year + x[s].mean()
        if trends:
            out = out - self._city_trend(out)
        return out

    def _city_trend(self, x):
        """Each city's least-squares linear trend in the year of x (x's city means being zero)."""
        t = np.arange(self.T, dtype=float) - (self.T - 1) / 2
        return (x @ t / (t @ t))[:, None] * t[None, :]

    def _projection(self, y, x, controls: bool = False):
        """The coefficient of x in a regression of y on x with city and year fixed effects (and
        the paper's eight controls if ``controls``), over the expected sample (a balanced panel:
        two-way demeaning is exact)."""
        return float(self._fe_coefs(y, [x], controls)[0])

    def _fe_coefs(self, y, regressors, controls: bool = False, trends: bool = False):
        """The coefficients of ``regressors`` ((n, T) arrays) in a regression of y with city
        and year fixed effects (and the paper's eight controls if ``controls``, city-specific
        linear trends if ``trends``) over the expected sample."""
        return self._fe_solve([y], regressors, controls, trends)[:, 0]

    def _fe_solve(self, ys, regressors, controls: bool = False, trends: bool = False):
        """:meth:`_fe_coefs` for several outcomes ``ys`` at once on one design: a
        (len(regressors), len(ys)) array."""
        s = self.in_sample
        cols = [self._within(x, trends)[s].ravel() for x in regressors]
        if controls:
            cols += [self._within(c, trends)[s].ravel() for c in self._controls()]
        design = np.column_stack(cols)
        rhs = np.column_stack([self._within(y, trends)[s].ravel() for y in ys])
        coef = np.linalg.lstsq(design, rhs, rcond=None)[0]
        return coef[: len(regressors)]

    def _controls(self):
        """The paper's eight controls (GDP, GOV, IND, INV, TRADE, TEC, FIN, OPE) as (n, T)
        arrays, by the workflow's definitions (nqp_resilience.indices.variables.controls)."""
        import pandas as pd

        from nqp_resilience.indices.variables import controls

        if self._control_values is not None:
            return self._control_values
        names = [
            "gdp", "population", "gdp_primary", "gdp_secondary", "gdp_tertiary",
            "fiscal_expenditure", "fixed_asset_investment", "wholesale_retail_sales",
            "science_expenditure", "education_expenditure", "loans", "fdi",
        ]  # fmt: skip
        cols = {k: self.values[k].ravel() for k in names}
        for k in ("employment_primary", "employment_secondary", "employment_tertiary"):
            cols[k] = np.ones(self.n * self.T)  # read by the helper, not used by the controls
        rate = [float(self.p["national"]["cny_per_usd"][int(y)]) for y in self.years]
        cols["cny_per_usd"] = np.tile(rate, self.n)
        out = controls(pd.DataFrame(cols))
        self._control_values = [out[c].to_numpy().reshape(self.n, self.T) for c in out.columns]
        return self._control_values

    def _resil_terms(self, d, gdp_ctrl):
        """The coefficients of Resil's planted terms.

        Resil = ... + b0 q + sum_k h_k D_k q + c (trend of q) + l (ln GDP pc - mean), with q in
        the first term taken as its deviation from the year mean (the year effects absorb the
        common trend anyway) and in the interactions as its deviation from the sample mean (D_k
        times a constant is absorbed by the city effects). The interactions are thus planted on
        the regressor the paper's Table 7 specs use, D_k x q: planting them on D_k x (q − year
        mean) instead left D_k x the common trend of q in the regressor and not in the outcome,
        which attenuated each interaction three- to fourfold, so the structural slopes had to be
        three to four times the published ones, and the cities' departures from the average slope
        inflated the CR1 SE of every spec without the interactions.

        "trend of q" is each city's linear trend in the year of its two-way-demeaned q: the
        slow, city-specific drift of NQP, which may move resilience at another rate than NQP's
        movements around that drift. A regression with city-specific linear trends (Table 5 (5))
        sees only the movements around the drift: the drift and D_k x the common trend of q are
        absorbed by the cities' trends, so that spec's coefficient is a different average of the
        slopes than the baseline's unless the outcome's dependence on the drift is set apart.
        Without ``resil.beta_city_trends`` in the parameters the term is left out (c = 0) and the
        city-trend spec estimates whatever the other terms imply.

        The paper's specs estimate, with city and year fixed effects: the coefficient of q with
        the controls (``resil.beta``, Table 3 (2)), without them (``resil.beta_no_controls``,
        Table 3 (1)) and with the controls and city-specific linear trends
        (``resil.beta_city_trends``, Table 5 (5)), and the coefficient of D_k x q next to q, one
        interaction per regression (``resil.het``, Table 7). Each of these is linear in
        (b0, h, c, l): the system of each spec's coefficient on each term, computed on the
        expected sample without noise, is solved for the published values. The interactions must
        be solved jointly: the dummies are correlated, so each regression's one interaction also
        carries the others."""
        r = self.p["resil"]
        if float(r["beta_no_controls"]) != float(r["beta"]) and not self.p["ratios"][
            "log_gdp_per_capita"
        ].get("within_load", 0.0):
            raise ValueError(
                "resil.beta_no_controls differs from resil.beta, but GDP per capita does not "
                "move with NQP within cities (ratios.log_gdp_per_capita.within_load is 0)"
            )
        names = list(r["het"])
        q, s = self.q, self.in_sample
        q_year = q - q[s].mean(axis=0, keepdims=True)
        q_centred = q - q[s].mean()
        terms = [q_year] + [d[k][:, None] * q_centred for k in names]
        # the specs' regressors (q and D_k x q), controls, city trends; and the targets
        specs = [([q], True, False), ([q], False, False)]
        specs += [([q, d[k][:, None] * q], True, False) for k in names]
        target = [float(r["beta"]), float(r["beta_no_controls"])] + [
            float(r["het"][k]) for k in names
        ]
        trends = r.get("beta_city_trends") is not None
        if trends:
            terms.append(self._city_trend(self._within(q)))
            specs.append(([q], True, True))
            target.append(float(r["beta_city_trends"]))
        terms.append(gdp_ctrl)
        # each spec's coefficient (its last regressor) on every term: one design per spec
        system = np.array(
            [self._fe_solve(terms, regs, ctrl, trend)[-1] for regs, ctrl, trend in specs]
        )
        theta = np.linalg.solve(system, np.array(target)) if any(target) else np.zeros(len(terms))
        self.het_structural = dict(zip(names, theta[1 : 1 + len(names)].tolist(), strict=True))
        self.trend_loading = float(theta[-2]) if trends else 0.0
        self.gdp_loading = float(theta[-1])
        return sum(t * x for t, x in zip(theta, terms, strict=True))

    def _outcomes(self):
        """Resil (through reported growth), Une, Talent, INN and the employment split, planted
        on q so that a regression with city and year fixed effects of the measured outcome on q
        estimates the parameter file's value (docs/simulation.md)."""
        rng = _rng(self.seed, "outcomes")
        q, s = self.q, self.in_sample
        r = self.p["resil"]
        nat = {int(k): v for k, v in self.p["national"]["gdp_growth_pct"].items()}
        g_nat = np.array([nat[int(y)] for y in self.years])
        gdp_ctrl = self.log_gdp_pc - self.log_gdp_pc[s].mean()
        attrs = self.cities
        sci = (self.values["science_expenditure"] / self.values["fiscal_expenditure"]).mean(axis=1)
        d = {
            "Asset": np.array([1 - int(c["is_resource_based"] or 0) for c in attrs], float),
            "GOVP": (sci > sci[s].mean()).astype(float),
            "ADM": np.array([int(c["adm_high"] or 0) for c in attrs], float),
        }
        planted = self._resil_terms(d, gdp_ctrl)
        self.resil_planted, self.dummies = planted, d
        alpha = r["city_sd"] * rng.standard_normal(self.n)
        tau = r["year_sd"] * rng.standard_normal(self.T)
        resil = (
            r["mean"]
            + alpha[:, None]
            + tau[None, :]
            + planted
            + r["noise_sd"] * rng.standard_normal((self.n, self.T))
        )
        self.resil = resil
        self.values["gdp_growth"] = g_nat[None, :] * (1 + resil)
        u = self.p["unemployment"]
        # the slope acts on two-way-demeaned q: a between-city slope or the common trend would
        # push cities against the bounds of the rate, and the fixed effects absorb both anyway.
        # The rate is bounded (clip), which bends the slope where cells reach a bound: the
        # structural slope is solved so that the regression of the expected bounded rate
        # (normal noise, closed form) on q gives ``unemployment.beta``.
        level = u["mean"] + u["city_sd"] * rng.standard_normal(self.n)[:, None]
        qw = self._within(q)
        lo, hi = u["clip"]

        def expected(b):
            return _expected_clipped(level + b * qw, u["noise_sd"], lo, hi)[s]

        b_une = self._measured_slope(expected, float(u["beta"]), q)
        self.une_expected = _expected_clipped(level + b_une * qw, u["noise_sd"], lo, hi)
        self.structural = {"beta_une": b_une}
        une = level + b_une * qw + u["noise_sd"] * rng.standard_normal((self.n, self.T))
        self.une = np.clip(une, lo, hi)
        self.clipped = {"Une": float((self.une != une)[s].mean())}
        v = self.values
        self._employment(q)
        v["registered_unemployed"] = self.une / (1 - self.une) * v["urban_employment"] * 1e4
        self._mechanisms(q, q[s].mean())

    def _structure_panel(self, level, l1, l2, l3):
        """Output and employment by industry of the expected sample as the workflow's panel
        columns, for the measures of the structure (nqp_resilience.indices.variables)."""
        import pandas as pd

        s, v = self.in_sample, self.values
        cols = {k: v[k][s].ravel() for k in ("gdp_primary", "gdp_secondary", "gdp_tertiary")}
        for name, share in (("primary", l1), ("secondary", l2), ("tertiary", l3)):
            cols[f"employment_{name}"] = (level * share)[s].ravel()
        return pd.DataFrame(cols)

    def _employment(self, q):
        """Employment planted on q (within city, q minus the city's mean q):

        * urban-unit employment grows at the national rate + beta_mrd (q − q̄_i) + noise
          (recovery speed Mrd, Table 5 (2));
        * employment by industry: its level falls with q (labour productivity rises,
          advancement, Table 6 (2)) and agriculture's excess employment share a = l1 − y1 falls
          with q (rationalisation, Table 6 (1)); the tertiary share, an index measure, is unchanged.

        Rationalisation and advancement are nonlinear measures (pooled min–max, Hamming, Theil),
        so ``beta_rat`` and ``beta_adv`` are their coefficients on q, not the structural slopes:
        each structural slope is solved so that the fixed-effects regression of the measure,
        computed without its own noise, on q and the paper's controls (as in Table 6) gives the
        parameter (see :meth:`_measured_slope`).
        """
        from nqp_resilience.indices.variables import advancement, rationalization

        e, rng = self.p["employment"], _rng(self.seed, "employment")
        st, v = self._structure, self.values
        dq = q - q.mean(axis=1, keepdims=True)
        shape = (self.n, self.T)
        nat = np.array([float(self.p["national"]["employment_1e4"][int(y)]) for y in self.years])
        nat_prev = np.array(
            [float(self.p["national"]["employment_1e4"][int(y) - 1]) for y in self.years]
        )
        growth = (
            (nat / nat_prev - 1)[None, :]
            + e["beta_mrd"] * dq
            + e["mrd_noise_sd"] * rng.standard_normal(shape)
        )
        growth[:, 0] = 0.0
        v["urban_employment"] = st["uemp"][:, :1] * np.cumprod(1 + growth, axis=1)
        y1, l3 = st["y1"], st["l3"]
        a_city = np.clip((self._gap_share - y1).mean(axis=1, keepdims=True), 0.02, 0.5)
        rat_noise = e["rat_noise_sd"] * rng.standard_normal(shape)
        adv_noise = e["adv_noise_sd"] * rng.standard_normal(shape)
        base_level = (
            np.log(st["employed"]).mean(axis=1, keepdims=True) + np.log(nat / nat.mean())[None, :]
        )

        def shares(b_rat, noise):
            a = np.clip(a_city - b_rat * dq + noise, 0.0, None)
            l1 = np.clip(y1 + a, 0.01, 0.9)
            l2 = np.clip(1 - l1 - l3, 0.03, None)
            return 1 - l2 - l3, l2

        def level(b_adv, noise):
            return np.exp(base_level - b_adv * dq + noise)

        def rat(b):
            l1, l2 = shares(b, 0.0)
            return rationalization(self._structure_panel(1.0, l1, l2, l3))

        b_rat = self._measured_slope(rat, float(e["beta_rat"]), q)
        l1, l2 = shares(b_rat, rat_noise)

        def adv(b):
            return advancement(self._structure_panel(level(b, 0.0), l1, l2, l3))

        b_adv = self._measured_slope(adv, float(e["beta_adv"]), q)
        self.structural.update(beta_rat=b_rat, beta_adv=b_adv)
        lev = level(b_adv, adv_noise)
        v["employment_primary"], v["employment_secondary"], v["employment_tertiary"] = (
            lev * l1,
            lev * l2,
            lev * l3,
        )
        v["robot_installations"] = self._robot_density * nat[None, :] / v["employment_secondary"]

    def _measured_slope(self, measure, target: float, q, step: float = 0.1) -> float:
        """The structural slope b for which the fixed-effects regression of ``measure(b)`` (over
        the expected sample, city-major) on q equals ``target``: secant steps from b = 0 on the
        slope of the measured coefficient in b (the measures are smooth in b)."""
        s = self.in_sample

        def coef(b):
            m = np.full(q.shape, np.nan)
            m[s] = np.asarray(measure(b), dtype=float).reshape(-1, self.T)
            return self._projection(np.where(s[:, None], m, 0.0), q, controls=True)

        b0, c0 = 0.0, coef(0.0)
        b1, c1 = step, coef(step)
        for _ in range(6):
            if abs(c1 - target) < 1e-9 or c1 == c0:
                break
            b0, c0, b1 = b1, c1, b1 + (target - c1) * (b1 - b0) / (c1 - c0)
            c1 = coef(b1)
        if abs(c1 - target) > 1e-6 + 1e-3 * abs(target):
            raise ValueError(
                f"planting a slope of {target} on a structure measure did not converge"
            )
        return b1

    def _mechanism_parts(self):
        """City levels, trends and noise of the planted mechanism variables (drawn once)."""
        rng_m = _rng(self.seed, "mechanisms")
        self._mech = {}
        for name, spec in self.p["mechanisms"].items():
            base = _lognormal(rng_m, self.n, spec["mean"], spec["between_sd"])[:, None]
            trend = spec.get("trend", 0.0) * (self.years - self.years.mean())[None, :]
            self._mech[name] = (
                base + trend + spec["noise_sd"] * rng_m.standard_normal((self.n, self.T))
            )
        self._grant_ratio = np.clip(_lognormal(rng_m, (self.n, self.T), 0.35, 0.05), 0.05, 0.9)

    def _mechanisms(self, q, qbar):
        """INN (invention applications per 10,000 people) and Talent (location quotient of the
        college-educated share): x_it = base_i + trend + beta (q_it − mean q) + noise."""
        v, mech = self.values, self.p["mechanisms"]
        inn_free = self._mech["INN"] + mech["INN"]["beta"] * (q - qbar)
        inn = np.maximum(inn_free, 1e-3)
        v["invention_applications"] = inn * self.pop  # per 10,000 people x population in 10,000
        v["invention_grants"] = v["invention_applications"] * self._grant_ratio
        talent_free = self._mech["Talent"] + mech["Talent"]["beta"] * (q - qbar)
        talent = np.maximum(talent_free, 1e-3)
        s = self.in_sample
        self.clipped.update(
            INN=float((inn != inn_free)[s].mean()), Talent=float((talent != talent_free)[s].mean())
        )
        share = np.array(
            [float(self.p["national"]["college_share_pct"][int(y)]) / 100 for y in self.years]
        )
        v["college_educated"] = np.clip(talent * share[None, :], 0.005, 0.8) * self.pop

    # --------------------------------------------------------------- levels from ratios
    def _ratios_and_levels(self):
        shape, z = (self.n, self.T), self.z_nqp
        rng_r, rng_i, rng_s = (
            _rng(self.seed, "ratios"),
            _rng(self.seed, "indicators"),
            _rng(self.seed, "structure"),
        )
        pers = self.p["indicators"]["within_city_persistence"]
        ci = self.city_idx
        trend_years = (self.years - self.t0)[None, :]

        def ratio(block, name, rng):
            spec = self.p[block][name]
            zz = self.z_city if block == "ratios" else z  # controls: city level only (see _gdp)
            x = _lognormal(
                rng, shape, spec["mean"], spec["sd"], zz, spec.get("load", 0.0), pers, ci
            )
            return x * np.exp(spec.get("trend", 0.0) * (trend_years - (self.T - 1) / 2))

        v = self.values
        pop_wan = self.pop  # 万人
        persons = pop_wan * 1e4
        gdp_yuan = np.exp(self.log_gdp_pc) * persons
        gdp_wan = gdp_yuan / 1e4
        v["population"] = pop_wan
        v["gdp"] = gdp_wan
        # industrial structure: shares of output and of employment
        st = self.p["structure"]
        # the structure (and so IND, a control) follows the city's NQP level, not its yearly moves
        zc = self.z_city
        y1 = _lognormal(
            rng_s,
            shape,
            st["primary_share"]["mean"],
            st["primary_share"]["sd"],
            zc,
            st["primary_share"]["load"],
            pers,
            ci,
        )
        y3 = _lognormal(
            rng_s,
            shape,
            st["tertiary_share"]["mean"],
            st["tertiary_share"]["sd"],
            zc,
            st["tertiary_share"]["load"],
            pers,
            ci,
        )
        y1 = np.clip(y1, 0.005, 0.45)
        y3 = np.clip(y3, 0.15, 0.80)
        y2 = 1 - y1 - y3
        bad = y2 < 0.12
        y3 = np.where(bad, y3 - (0.12 - y2), y3)
        y2 = 1 - y1 - y3
        v["gdp_primary"], v["gdp_secondary"], v["gdp_tertiary"] = (
            y1 * gdp_wan,
            y2 * gdp_wan,
            y3 * gdp_wan,
        )
        self.ind = y1 + 2 * y2 + 3 * y3
        uemp = ratio("indicators", "urban_employment_per_capita", rng_i) * pop_wan
        gap = st["employment_gap_primary"] + st["employment_gap_sd"] * rng_s.standard_normal(shape)
        gap = np.repeat(gap.mean(axis=1, keepdims=True), self.T, axis=1) * 0.8 + 0.2 * gap
        l1 = np.clip(y1 + gap, 0.02, 0.70)
        l3 = np.clip(y3 - 0.5 * gap + 0.01 * rng_s.standard_normal(shape), 0.10, 0.85)
        l2 = np.clip(1 - l1 - l3, 0.05, None)
        total = l1 + l2 + l3
        employed = uemp * 1.6  # employment by industry covers more than urban units
        self._structure = {"y1": y1, "l3": l3 / total, "employed": employed, "uemp": uemp}
        self._gap_share = l1 / total
        v["employment_primary"] = employed * l1 / total
        v["employment_secondary"] = employed * l2 / total
        v["employment_tertiary"] = employed * l3 / total
        v["urban_employment"] = uemp
        v["avg_wage"] = ratio("indicators", "avg_wage", rng_i)
        v["college_students"] = ratio("indicators", "college_students_per_capita", rng_i) * persons
        # public finance
        fiscal = ratio("ratios", "fiscal_to_gdp", rng_r) * gdp_wan
        v["fiscal_expenditure"] = fiscal
        v["education_expenditure"] = ratio("ratios", "education_share_of_budget", rng_r) * fiscal
        v["science_expenditure"] = ratio("ratios", "science_share_of_budget", rng_r) * fiscal
        v["environment_expenditure"] = (
            ratio("ratios", "environment_share_of_budget", rng_r) * fiscal
        )
        v["fixed_asset_investment"] = ratio("ratios", "investment_to_gdp", rng_r) * gdp_wan
        v["wholesale_retail_sales"] = ratio("ratios", "trade_to_gdp", rng_r) * gdp_wan
        v["loans"] = ratio("ratios", "loans_to_gdp", rng_r) * gdp_wan
        rate = np.array([float(self.p["national"]["cny_per_usd"][int(y)]) for y in self.years])[
            None, :
        ]
        v["fdi"] = ratio("ratios", "fdi_cny_to_gdp", rng_r) * gdp_wan / rate  # 万美元
        # environment and infrastructure
        gdp_1e8 = gdp_wan / 1e4
        v["cod_emissions"] = ratio("indicators", "cod_t_per_1e8_cny", rng_i) * gdp_1e8
        v["so2_emissions"] = ratio("indicators", "so2_t_per_1e8_cny", rng_i) * gdp_1e8
        v["road_length"] = ratio("indicators", "road_km", rng_i)
        v["broadband_users"] = ratio("indicators", "broadband_per_capita", rng_i) * pop_wan
        # patents (CNRDS)
        grants = ratio("indicators", "patents_per_10k", rng_i) * pop_wan
        v["patent_grants"] = grants
        v["patent_applications"] = np.maximum(
            grants / np.clip(ratio("indicators", "grant_ratio", rng_i), 0.1, 0.95), 1.0
        )
        v["green_invention_applications"] = v["patent_applications"] * np.clip(
            ratio("indicators", "green_invention_share", rng_i), 0.0, 0.5
        )
        # innovation and digital economy (CNRDS)
        v["rd_personnel_fte"] = ratio("indicators", "rd_fte", rng_i)
        v["new_product_expenditure"] = (
            ratio("indicators", "new_product_share_of_gdp", rng_i) * gdp_wan
        )
        v["digital_economy_index"] = ratio("indicators", "digital_economy_index", rng_i)
        v["enterprise_digitalization"] = ratio("indicators", "enterprise_digitalization", rng_i)
        v["new_firms"] = ratio("indicators", "new_firms_per_100", rng_i) * persons / 100
        ent = ratio("indicators", "enterprises_per_10k", rng_i) * pop_wan
        v["enterprises_total"] = np.maximum(ent, 10)
        v["ecommerce_firms"] = v["enterprises_total"] * np.clip(
            ratio("indicators", "ecommerce_firm_share", rng_i), 0, 0.9
        )
        v["strategic_emerging_value_added"] = (
            ratio("indicators", "strategic_emerging_share", rng_i) * gdp_wan
        )
        # the CNRDS robot input is a Bartik-style exposure: installations attributed to the city's
        # industries, so that
        # density = installations x (industrial employment / national employment)
        nat_emp = np.array(
            [float(self.p["national"]["employment_1e4"][int(y)]) for y in self.years]
        )[None, :]
        self._robot_density = ratio("indicators", "robot_density", rng_i)
        v["robot_installations"] = self._robot_density * nat_emp / v["employment_secondary"]
        v["energy_consumption"] = (
            ratio("indicators", "energy_tce_per_1e4_cny", rng_i) * gdp_wan / 1e4
        )  # 万吨标准煤
        v["low_carbon_energy_index"] = ratio("indicators", "low_carbon_index", rng_i)
        v["waste_gas_capacity"] = ratio("indicators", "waste_gas_capacity_1e4m3h", rng_i)
        v["fibre_length"] = ratio("indicators", "fibre_km", rng_i)
        v["rail_length"] = ratio("indicators", "rail_km", rng_i)
        v["forest_cover"] = np.clip(ratio("indicators", "forest_cover_pct", rng_i), 0.5, 95.0)

    def _static(self):
        self.static = {"relief": self.relief, "telephones_1984": self.telephones}


# =============================================================================== formatting


def _by_year(mapping: dict, year: int):
    """``mapping[year]``, or for a year it does not list the value of the nearest listed year
    (the earlier one on a tie): years before the parameter file's first listed year take the
    first year's value, later years the last's."""
    if year in mapping:
        return mapping[year]
    listed = sorted(int(y) for y in mapping)
    nearest = min(listed, key=lambda y: (abs(y - year), y))
    return mapping[nearest]


def _fmt(value: float, decimals: int) -> str:
    if decimals == 0:
        return str(int(round(value)))
    return f"{value:.{decimals}f}"


def _missing_mask(sim: Simulation, var_index: dict[str, int], rng) -> np.ndarray:
    """(n_cities, T, n_vars) boolean mask of missing cells: MCAR plus sparse cities."""
    n_vars = len(var_index)
    m = sim.p["missing"]
    mask = rng.random((sim.n, sim.T, n_vars)) < m["mcar_share"]
    lo, hi = m["sparse_share"]
    for i in sim.sparse_idx:
        share = rng.uniform(lo, hi)
        mask[i] |= rng.random((sim.T, n_vars)) < share
    for name in m.get("never_missing", []):
        mask[:, :, var_index[name]] = False
    return mask


def _csv_text(header, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _deterministic_xlsx(header, rows) -> bytes:
    """An xlsx file whose bytes depend only on its content (fixed timestamps everywhere)."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(header)
    for r in rows:
        ws.append(r)
    raw = io.BytesIO()
    wb.save(raw)
    fixed = "2022-01-01T00:00:00Z"
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in sorted(zin.namelist()):
            data = zin.read(name)
            if name == "docProps/core.xml":
                import re

                text = data.decode("utf-8")
                text = re.sub(
                    r"(<dcterms:created[^>]*>)[^<]*(</dcterms:created>)",
                    rf"\g<1>{fixed}\g<2>",
                    text,
                )
                text = re.sub(
                    r"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                    rf"\g<1>{fixed}\g<2>",
                    text,
                )
                data = text.encode("utf-8")
            info = zipfile.ZipInfo(name, date_time=(2022, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            zout.writestr(info, data)
    return out.getvalue()


class Writer:
    """Formats a :class:`Simulation` into the raw layout (docs/design.md#raw-inputs)."""

    def __init__(self, sim: Simulation, codebook: Codebook, keywords: list[str], provinces=None):
        """``provinces``: the province codes that get a government work report (by default
        those of the simulated units; :func:`simulate` passes those of the whole attribute
        table, so that a subset of the cities still has every report the workflow expects)."""
        self.sim, self.cb, self.keywords = sim, codebook, keywords
        self.provinces = sorted(
            provinces if provinces is not None else {c["province_code"] for c in sim.cities}
        )
        self.fmt = sim.p["format"]
        self.files: dict[str, bytes] = {}
        city_vars = [
            v for s in ("yearbook", "patents", "innovation") for v in codebook[s].variables
        ]
        self.var_index = {v: i for i, v in enumerate(city_vars)}
        self.missing = _missing_mask(sim, self.var_index, _rng(sim.seed, "missing"))

    def _cell(self, name, i, t, unit, rng, year=None, style=None):
        if self.missing[i, t, self.var_index[name]]:
            pool = self.fmt["placeholders"] if style == "yearbook" else [""]
            return pool[int(rng.integers(len(pool)))]
        value = self.sim.values[name][i, t]
        text = _fmt(value, _DECIMALS[unit])
        if style == "yearbook":
            if year in self.fmt["thousands_separator_years"] and abs(value) >= 1000:
                whole, _, frac = text.partition(".")
                text = f"{int(whole):,}" + (f".{frac}" if frac else "")
            if (
                year in self.fmt["fullwidth_digit_years"]
                and rng.random() < self.fmt["fullwidth_digit_share"]
            ):
                text = text.translate(_FULLWIDTH)
        return text

    def _identity(self, i, year):
        c = self.sim.cities[i]
        alias = self.fmt["old_alias"]
        if c["city_code"] == alias["city_code"] and year in alias["years"]:
            return c["city_code"], alias["name"]
        if c["predecessor_code"] and year < int(c["first_year_2010_2021"]):
            return c["predecessor_code"], c["predecessor_name"]
        return c["city_code"], c["city_name"]

    def _present(self, i, t) -> bool:
        """Does city i appear in the extracts of year t (as a city, or as its predecessor 地区)?"""
        c = self.sim.cities[i]
        if self.sim.exists[i, t]:
            return True
        # 毕节/铜仁: the 2010 yearbook reports the 地区 under its old code
        # (changed_2011 status changes)
        return c["changed_2011_type"] == "status_change" and bool(c["predecessor_code"])

    def yearbook(self):
        src, rng = self.cb["yearbook"], _rng(self.sim.seed, "format")
        variants = self.fmt["header_variants"]
        for t, year in enumerate(self.sim.years.tolist()):
            header = ["城市代码", "城市名称"]
            extra = year in self.fmt["extra_columns_years"]
            if extra:
                header = ["序号", "省份"] + header
            names = list(src.variables)
            for name in names:
                var = src.variables[name]
                h = var.headers[0]
                if name in variants and year in variants[name]["years"]:
                    h = variants[name]["header"]
                header.append(h)
            rows = []
            for i in range(self.sim.n):
                if not self._present(i, t):
                    continue
                code, cname = self._identity(i, year)
                row = [code, cname]
                if extra:
                    row = [str(len(rows) + 1), self.sim.cities[i]["province_name"]] + row
                for name in names:
                    row.append(
                        self._cell(name, i, t, src.variables[name].unit, rng, year, "yearbook")
                    )
                rows.append(row)
            enc = str(_by_year(self.fmt["yearbook_encoding"], year))
            if enc == "xlsx":
                xrows = [[_xlsx_value(v) for v in r] for r in rows]
                self.files[f"yearbook/city_yearbook_{year}.xlsx"] = _deterministic_xlsx(
                    header, xrows
                )
            else:
                self.files[f"yearbook/city_yearbook_{year}.csv"] = _csv_text(header, rows).encode(
                    enc
                )

    def cnrds(self):
        rng = _rng(self.sim.seed, "format")
        for source, fname in (
            ("patents", "cnrds/patents.csv"),
            ("innovation", "cnrds/innovation.csv"),
        ):
            src = self.cb[source]
            header = ["年份", "城市代码", "城市名称"] + [
                v.headers[0] for v in src.variables.values()
            ]
            rows = []
            for i in range(self.sim.n):
                for t, year in enumerate(self.sim.years.tolist()):
                    if not self.sim.exists[i, t]:
                        continue
                    c = self.sim.cities[i]
                    rows.append(
                        [str(year), c["city_code"], c["city_name"]]
                        + [self._cell(n, i, t, v.unit, rng) for n, v in src.variables.items()]
                    )
            self.files[fname] = _csv_text(header, rows).encode("utf-8")

    def national(self):
        nat = self.sim.p["national"]
        src = self.cb["national"]
        series = {
            "national_gdp_growth": "gdp_growth_pct",
            "national_internet_users": "internet_users_1e4",
            "cny_per_usd": "cny_per_usd",
            "national_employment": "employment_1e4",
            "national_college_share": "college_share_pct",
        }
        header = ["年份"] + [src.variables[n].headers[0] for n in series]
        # the simulated years and the year before the first (lagged instrument, employment
        # growth): the workflow reads the national file over exactly that range
        years = list(range(self.sim.t0 - 1, self.sim.t1 + 1))
        rows = [
            [str(y)]
            + [
                _fmt(float(nat[key][y]), _DECIMALS[src.variables[n].unit])
                for n, key in series.items()
            ]
            for y in years
        ]
        self.files["ceic/national.csv"] = _csv_text(header, rows).encode("utf-8")

    def static(self):
        for name, fname in (
            ("relief", "static/relief.csv"),
            ("telephones_1984", "static/telephones_1984.csv"),
        ):
            var = self.cb[name].variables[name]
            header = ["城市代码", "城市名称", var.headers[0]]
            rows = [
                [
                    c["city_code"],
                    c["city_name"],
                    _fmt(self.sim.static[name][i], _DECIMALS[var.unit]),
                ]
                for i, c in enumerate(self.sim.cities)
            ]
            self.files[fname] = _csv_text(header, rows).encode("utf-8")

    def reports(self):
        """Government work reports: filler text with NQP keywords at simulated frequencies."""
        p, rng = self.sim.p["reports"], _rng(self.sim.seed, "reports")
        provinces = self.provinces
        prov_of = np.array([c["province_code"] for c in self.sim.cities])
        # provinces without a simulated unit (a subset of the cities) count as average ones
        prov_nqp = {pc: self.sim.nqp[prov_of == pc].mean() for pc in provinces if pc in prov_of}
        vals = np.array(list(prov_nqp.values()))
        zp = {pc: (v - vals.mean()) / vals.std() for pc, v in prov_nqp.items()}
        zp = {pc: zp.get(pc, 0.0) for pc in provinces}
        zp["000000"] = 0.0
        self.report_counts: dict[tuple[str, int], int] = {}
        for pc in ["000000"] + provinces:
            for _t, year in enumerate(self.sim.years.tolist()):
                rate = p["rate_per_10k"] * np.exp(
                    p["rate_trend"] * (year - self.sim.t0 - (self.sim.T - 1) / 2)
                    + p["rate_nqp_load"] * zp[pc]
                    + p["rate_noise_sd"] * rng.standard_normal()
                )
                n_chars = int(p["chars_mean"] * rng.uniform(0.8, 1.2))
                count = int(rng.poisson(rate * n_chars / 1e4))
                self.report_counts[(pc, year)] = count
                text = _report_text(rng, self.keywords, count, n_chars, year)
                self.files[f"reports/{pc}_{year}.txt"] = text.encode("utf-8")

    def all(self) -> dict[str, bytes]:
        self.yearbook()
        self.cnrds()
        self.national()
        self.static()
        self.reports()
        return dict(sorted(self.files.items()))


def _xlsx_value(cell: str):
    """Numbers become numeric xlsx cells; placeholders and codes stay text."""
    try:
        return (
            float(cell) if "." in cell else int(cell) if cell.isdigit() and len(cell) != 6 else cell
        )
    except ValueError:
        return cell


# Sentences of a generic government work report that contain none of the 46 keywords.
_FILLER = [
    "过去一年，全省上下坚持稳中求进工作总基调，经济运行总体平稳。",
    "全年地区生产总值稳步增长，一般公共预算收入保持增长。",
    "城乡居民人均可支配收入持续提高，民生保障不断加强。",
    "深入推进乡村振兴，粮食总产量保持稳定。",
    "扎实推进生态环境保护，空气质量优良天数比例进一步提高。",
    "持续深化重点领域改革，营商环境不断优化。",
    "统筹发展和安全，防范化解重大风险取得积极成效。",
    "加强基础设施建设，交通网络更加完善。",
    "办好民生实事，教育、医疗、养老等公共服务水平稳步提升。",
    "扩大高水平对外开放，进出口总额保持增长。",
    "加强政府自身建设，依法行政水平不断提高。",
    "推进新型城镇化，城市更新行动有序实施。",
    "稳定和扩大就业，城镇新增就业超过预期目标。",
    "坚持房子是用来住的定位，促进房地产市场平稳运行。",
    "加强社会治理，人民群众安全感持续增强。",
]
_KEYWORD_FRAMES = [
    "大力推动{kw}，",
    "加快{kw}步伐，",
    "着力培育{kw}，",
    "坚持{kw}，",
    "围绕{kw}持续发力，",
]


def _report_text(rng, keywords, count, n_chars, year) -> str:
    parts = [f"{year}年政府工作报告\n"]
    kws = [keywords[int(k)] for k in rng.integers(len(keywords), size=count)]
    length = len(parts[0])
    slots = (
        set(rng.choice(max(n_chars // 30, count + 1), size=count, replace=False).tolist())
        if count
        else set()
    )
    k = 0
    step = 0
    while length < n_chars or k < count:
        if step in slots and k < count:
            frame = _KEYWORD_FRAMES[int(rng.integers(len(_KEYWORD_FRAMES)))]
            s = frame.format(kw=kws[k]) + "各项工作取得新进展。"
            k += 1
        else:
            s = _FILLER[int(rng.integers(len(_FILLER)))]
        parts.append(s)
        length += len(s)
        step += 1
        if step % 8 == 0:
            parts.append("\n")
    return "".join(parts) + "\n"


# =============================================================================== entry point


# ============================================================================ units and years


def parse_years(text) -> tuple[int, int]:
    """``"2002-2021"`` (or a (first, last) pair) -> (2002, 2021): the simulated data years,
    inclusive, at least three (the city-trend spec needs three)."""
    if isinstance(text, str):
        parts = text.strip().split("-")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"years {text!r}: write FIRST-LAST, e.g. 2002-2021")
        first, last = (int(p) for p in parts)
    else:
        first, last = (int(y) for y in text)
    if last < first + 2:
        raise ValueError(
            f"years {first}-{last}: at least three years, FIRST-LAST with FIRST < LAST"
        )
    return first, last


def synthetic_code(j: int) -> str:
    """The code of synthetic unit ``j`` (1, 2, ...): ``9bcccc`` (see ``SYNTHETIC_PREFIX``)."""
    if not 1 <= j <= MAX_SYNTHETIC_UNITS:
        raise ValueError(f"synthetic unit {j}: at most {MAX_SYNTHETIC_UNITS} synthetic units")
    block, serial = divmod(j - 1, 9999)
    return f"{SYNTHETIC_PREFIX}{block}{serial + 1:04d}"


def is_synthetic_code(code: str) -> bool:
    """True for a code of the synthetic range (six digits starting with 9, not ending in 0000)."""
    return len(code) == 6 and code.isdigit() and code[0] == SYNTHETIC_PREFIX and code[2:] != "0000"


def _in_period(row: dict, first: int, last: int) -> dict | None:
    """The attribute row with ``first_year_2010_2021``, ``last_year_2010_2021`` and
    ``n_years_2010_2021`` counted over the simulated years ``first``-``last`` (None if the city
    is in none of them). A city listed from 2010 is taken to exist in every earlier year, one
    listed to 2021 in every later year; cities created or abolished within 2010-2021 keep their
    years. For 2010-2021 the row is unchanged."""
    f0, l0 = int(row["first_year_2010_2021"]), int(row["last_year_2010_2021"])
    lo = first if f0 <= TABLE_YEARS[0] else f0
    hi = last if l0 >= TABLE_YEARS[1] else l0
    lo, hi = max(lo, first), min(hi, last)
    if lo > hi:
        return None
    out = dict(row)
    out["first_year_2010_2021"], out["last_year_2010_2021"] = str(lo), str(hi)
    out["n_years_2010_2021"] = str(hi - lo + 1)
    return out


def _eligible(row: dict, n_years: int) -> bool:
    """A city the sample rules keep unless it is sparse: a city in every simulated year that
    did not change in 2011 (as :meth:`Simulation._sparse` decides)."""
    return row["changed_2011"] != "1" and row["n_years_2010_2021"] == str(n_years)


def _synthetic_units(real: list[dict], count: int, first: int, last: int) -> list[dict]:
    """``count`` synthetic units: each copies the province, region, type and flags
    (``DONOR_COLUMNS``) of a donor drawn uniformly, with replacement, from the real cities that
    are in every year of 2010-2021 and did not change in 2011; unit j's donor is
    ``floor(u_j x donors)`` with u_j the j-th uniform of ``default_rng(UNITS_SEED)``, so the first
    units are the same whatever the count. Every synthetic unit is in every simulated year."""
    donors = [r for r in real if _eligible(r, TABLE_YEARS[1] - TABLE_YEARS[0] + 1)]
    draws = np.random.default_rng(UNITS_SEED).random(count)
    units = []
    for j, u in enumerate(draws, start=1):
        donor = donors[int(u * len(donors))]
        row = dict.fromkeys(real[0], "")
        name = f"Synthetic unit {j:04d}"
        row.update(
            city_code=synthetic_code(j),
            city_name=name,
            city_name_en=name,
            city_name_en_ascii=name.lower().replace(" ", "_"),
            first_year_2010_2021=str(first),
            last_year_2010_2021=str(last),
            n_years_2010_2021=str(last - first + 1),
            changed_2011="0",
            sources=f"synthetic (attributes of donor {donor['city_code']})",
        )
        row.update({k: donor[k] for k in DONOR_COLUMNS})
        units.append(row)
    return units


def unit_list(
    real: list[dict], years: tuple[int, int], units: int | None, sparse_cities: int
) -> tuple[list[dict], int]:
    """The simulated units and the number of sparse units among them.

    ``units`` is N, the size of the expected sample (the units the workflow's sample rules
    keep; None: the real list as it is). With the real cities of the period, E eligible
    (:func:`_eligible`) and ``sparse_cities`` of them sparse, the real list gives B = E −
    ``sparse_cities`` sample cities (230 for 2010-2021):

    * N >= B: every real city of the period, and N − B synthetic units
      (:func:`_synthetic_units`); ``sparse_cities`` sparse units are drawn as before, among all
      eligible units.
    * N < B: N + k of the E eligible real cities, k = round(sparse_cities x N / B) of them
      sparse (the real list's share): in city-code order, the cities at positions
      floor((i + 1/2) E / (N + k)), i = 0 .. N + k − 1, a systematic sample that spreads over
      the provinces. Cities that change in 2011 or miss a year are left out.

    The list depends on N and the period only, never on the seed."""
    first, last = years
    T = last - first + 1
    rows = [r for r in (_in_period(c, first, last) for c in real) if r is not None]
    eligible = [r for r in rows if _eligible(r, T)]
    base = len(eligible) - int(sparse_cities)
    if base <= 0:
        raise ValueError(
            f"missing.sparse_cities ({sparse_cities}) leaves no city of the real list in the sample"
        )
    if units is None or int(units) == base:
        return rows, int(sparse_cities)
    n = int(units)
    if n < 1:
        raise ValueError(f"units {n}: the expected sample needs at least one unit")
    if n > base:
        return rows + _synthetic_units(real, n - base, first, last), int(sparse_cities)
    k = round(int(sparse_cities) * n / base)
    m = n + k
    picks = [int((i + 0.5) * len(eligible) / m) for i in range(m)]
    return [eligible[i] for i in picks], k


def check_national_years(params: dict, first: int, last: int) -> None:
    """Every national series must cover the year before the first simulated year (the lagged
    instrument, employment growth) to the last."""
    need = set(range(first - 1, last + 1))
    for key, series in params["national"].items():
        missing = sorted(need - {int(y) for y in series})
        if missing:
            raise ValueError(
                f"national.{key} of the parameter file has no value for {missing}: years "
                f"{first}-{last} need {first - 1}-{last} (add the public figures to the "
                "parameter file, or choose other years)"
            )


def prepare(params: dict, real: list[dict], *, units=None, years=None) -> tuple[dict, list[dict]]:
    """The parameters and the unit list of a simulation with ``units`` (N, the expected
    sample; None: the real list) and ``years`` (``"FIRST-LAST"`` or a pair; None: the parameter
    file's ``years``). The parameters are a copy with ``years`` and ``missing.sparse_cities``
    set; without ``units`` and ``years`` both are returned as given."""
    import copy

    params = copy.deepcopy(params)
    if years is not None:
        first, last = parse_years(years)
        params["years"] = {"start": first, "end": last}
    first, last = int(params["years"]["start"]), int(params["years"]["end"])
    check_national_years(params, first, last)
    cities, sparse = unit_list(real, (first, last), units, params["missing"]["sparse_cities"])
    if units is not None or years is not None:
        params["missing"]["sparse_cities"] = sparse
    return params, cities


def attributes_csv(rows: list[dict], columns) -> bytes:
    """Attribute rows in the layout of ``resources/cities/city_attributes.csv``."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


#: Where :func:`simulate` writes the unit list when it is not the real attribute table.
UNITS_FILE = "units/city_attributes.csv"


def simulate(
    seed: int,
    params_path,
    out_dir,
    *,
    units: int | None = None,
    years=None,
    attributes="resources/cities/city_attributes.csv",
    codebook="resources/codebook.yaml",
    keywords="resources/nqp_keywords.txt",
    indicators="resources/indicators.yaml",
    return_simulation: bool = False,
):
    """Simulate every raw file and write it under ``out_dir``; return {relative path: bytes}
    (or the :class:`Simulation` itself if ``return_simulation``).

    ``units``: N, the number of units in the expected sample (None: the real list, 230 sample
    cities in 2010-2021); ``years``: ``"FIRST-LAST"`` or a (first, last) pair (None: the
    parameter file's ``years``). See :func:`unit_list` and docs/simulation.md. When the unit
    list differs from the attribute table (synthetic units, a subset, other years), it is
    written to ``units/city_attributes.csv`` in the attribute table's layout."""
    from nqp_resilience.indices.indicators import load_indicator_system

    real = read_attributes(attributes)
    params, cities = prepare(read_yaml(params_path), real, units=units, years=years)
    cb = Codebook(codebook)
    sim = Simulation(params, cities, seed, cb, load_indicator_system(indicators))
    provinces = {r["province_code"] for r in real}
    writer = Writer(sim, cb, read_keywords(keywords), provinces=provinces)
    files = writer.all()
    custom = cities != real
    if custom:
        files[UNITS_FILE] = attributes_csv(cities, real[0])
        files = dict(sorted(files.items()))
    out = Path(out_dir)
    for rel, data in files.items():
        write_bytes(out / rel, data)
    manifest = "".join(f"{_sha256(d)}  {rel}\n" for rel, d in files.items())
    write_text(out / "SHA256SUMS", manifest)
    summary = [
        "# Simulated raw extracts (not real data)",
        f"seed: {seed}",
        f"params: {Path(params_path).as_posix()}",
        f"cities: {sim.n}",
        f"years: {sim.t0}-{sim.t1}",
        f"sparse_cities: {' '.join(sim.sparse_cities)}",
    ]
    if custom:
        n_syn = sum(is_synthetic_code(c["city_code"]) for c in cities)
        summary[5:5] = [
            f"units: {int(sim.in_sample.sum())} in the expected sample ({n_syn} synthetic)",
            f"unit list: {UNITS_FILE}",
        ]
    write_text(out / "SIMULATED.md", "\n".join(summary) + "\n")
    return sim if return_simulation else files


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m nqp_resilience.sim.simulate", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--seed", type=int, required=True, help="random seed (integer)")
    ap.add_argument(
        "--params", required=True, help="parameter file, e.g. resources/simulation/params.yaml"
    )
    ap.add_argument("--out", required=True, help="output folder (the raw-data layout)")
    ap.add_argument(
        "--units",
        type=int,
        default=None,
        metavar="N",
        help="units in the expected sample (default: the real list, 230 cities in 2010-2021); "
        "above it, synthetic units are added, below it a subset of the real cities is drawn",
    )
    ap.add_argument(
        "--years",
        default=None,
        metavar="FIRST-LAST",
        help="simulated data years, inclusive, e.g. 2002-2021 (default: the parameter file's)",
    )
    ap.add_argument("--attributes", default="resources/cities/city_attributes.csv")
    ap.add_argument("--codebook", default="resources/codebook.yaml")
    ap.add_argument("--keywords", default="resources/nqp_keywords.txt")
    ap.add_argument("--indicators", default="resources/indicators.yaml")
    args = ap.parse_args(argv)
    if args.units is not None and args.units < 1:
        ap.error(f"--units {args.units}: the expected sample needs at least one unit")
    try:  # the period: its form, and the national series it needs
        params = read_yaml(args.params)
        first, last = parse_years(args.years) if args.years is not None else (None, None)
        if first is not None:
            check_national_years(params, first, last)
    except ValueError as exc:
        ap.error(str(exc))
    files = simulate(
        args.seed,
        args.params,
        args.out,
        units=args.units,
        years=args.years,
        attributes=args.attributes,
        codebook=args.codebook,
        keywords=args.keywords,
        indicators=args.indicators,
    )
    print(f"wrote {len(files)} files to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
