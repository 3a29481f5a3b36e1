"""The bootstrap split into shard jobs (estimation/bootstrap_shards.py): the combined result is
the same bytes whatever the shard count and equals the single-process API call; shard files
that do not belong together are refused; the spec selection of config.yaml: bootstrap."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from nqp_resilience import wild_cluster_bootstrap, wild_restricted_efficient_bootstrap
from nqp_resilience.data.parquet import read_columns
from nqp_resilience.errors import ConfigError, DataError
from nqp_resilience.estimation.bootstrap import BLOCK, shard_blocks
from nqp_resilience.estimation.bootstrap_shards import (
    draw_all,
    read_shards,
    reduce_record,
    spec_problem,
    write_shard,
)
from nqp_resilience.estimation.specs import bootstrap_spec_ids, json_safe

CONTROLS = ["c1", "c2"]
OLS = {
    "id": "het",
    "table": 7,
    "column": "(1)",
    "estimator": "ols_fe",
    "dependent": "y",
    "regressor": "x",
    "controls": True,
    "interact": "d",
    "sample": [{"column": "keep", "op": "==", "value": 1}],
}
TRENDS = {**OLS, "id": "trend", "interact": None, "trends": "city", "sample": []}
IV = {
    "id": "iv",
    "table": 4,
    "column": "IV",
    "estimator": "iv_fe",
    "dependent": "y",
    "regressor": "x",
    "controls": True,
    "instrument": "z",
}
DRAWS = {"reps": 2500, "seed": 7, "weights": "rademacher", "cluster": None}
INFERENCE = {"variant": "wcr", "null_value": 0.0, "level": 0.95, "p_type": "symmetric"}


def _data(seed: int = 0, n_city: int = 40, n_year: int = 8) -> dict:
    rng = np.random.default_rng(seed)
    city = np.repeat(np.arange(100, 100 + n_city), n_year)
    year = np.tile(np.arange(2010, 2010 + n_year), n_city)
    ce = rng.normal(size=n_city)[city - 100]
    z = rng.normal(size=city.size) + 0.5 * ce
    x = 0.6 * z + rng.normal(size=city.size) + ce
    c1, c2 = rng.normal(size=city.size), rng.normal(size=city.size)
    d = (city % 3 == 0).astype(float)
    y = 0.2 * x + 0.1 * d * x + 0.3 * c1 + ce + rng.normal(size=city.size)
    keep = (rng.random(city.size) > 0.05).astype(float)
    return {
        "city_code": city.astype(np.int64),
        "year": year.astype(np.int64),
        "province_code": (city // 10).astype(np.int64),
        "y": y,
        "x": x,
        "z": z,
        "c1": c1,
        "c2": c2,
        "d": d,
        "keep": keep,
    }


def _sharded(tmp_path, spec, data, shards, draws=DRAWS, inference=INFERENCE) -> bytes:
    problem = spec_problem(spec, data, CONTROLS, draws)
    paths = [tmp_path / f"{spec['id']}_{shards}_{k}.parquet" for k in range(shards)]
    for k, path in enumerate(paths):
        write_shard(path, problem, spec, draws, k, shards, inputs={"panel": "abc"})
    meta, stats = read_shards(paths)
    record = json_safe(reduce_record(meta, stats, inference, spec))
    return json.dumps(record, indent=2, allow_nan=False).encode()


@pytest.mark.parametrize("spec", [OLS, TRENDS, IV], ids=lambda s: s["id"])
def test_shard_count_does_not_change_the_result(tmp_path, spec):
    data = _data()
    one = _sharded(tmp_path, spec, data, 1)
    assert _sharded(tmp_path, spec, data, 3) == one
    assert _sharded(tmp_path, spec, data, 8) == one  # 3 blocks: five shards are empty
    record = json.loads(one)
    assert record["reps"] == 2500 and not record["enumerated"] and record["stream"] == spec["id"]
    assert record["method"] == ("wre" if spec["estimator"] == "iv_fe" else "wcr")


@pytest.mark.parametrize("spec", [OLS, TRENDS, IV], ids=lambda s: s["id"])
@pytest.mark.parametrize("draws", [DRAWS, {**DRAWS, "reps": 999, "weights": "webb"}])
def test_drawing_in_one_job_gives_the_sharded_record(tmp_path, spec, draws):
    """The reduce job of a one-shard config draws in memory (no shard file): the statistics and
    the record are the same bits as from shard files, whatever their number."""
    data = _data(seed=5)
    problem = spec_problem(spec, data, CONTROLS, draws)
    meta, stats = draw_all(problem, spec, draws, inputs={"panel": "abc"})
    assert stats.flags.c_contiguous and stats.shape == (len(meta["stat_names"]), problem.B)
    record = json_safe(reduce_record(meta, stats, INFERENCE, spec))
    in_memory = json.dumps(record, indent=2, allow_nan=False).encode()
    for shards in (1, 3):
        assert _sharded(tmp_path, spec, data, shards, draws=draws) == in_memory
    paths = [tmp_path / f"{spec['id']}_3_{k}.parquet" for k in range(3)]
    assert read_shards(paths)[1].tobytes() == stats.tobytes()


def _api(spec, data, **kw):
    """The single-process API call on the spec's sample (the interaction built by hand)."""
    keep = data["keep"] == 1 if spec.get("sample") else np.ones(len(data["y"]), bool)
    df = {k: v[keep] for k, v in data.items()}
    common = dict(reps=2500, seed=7, stream=spec["id"], **kw)
    if spec["estimator"] == "iv_fe":
        return wild_restricted_efficient_bootstrap(
            df, "y", "x", "z", CONTROLS, "city_code", "year", "city_code", **common
        )
    x = ["x"]
    if spec.get("interact"):
        df["d_x_x"] = df["d"] * df["x"]
        x = ["d_x_x", "x"]
    return wild_cluster_bootstrap(
        df,
        "y",
        x,
        CONTROLS,
        "city_code",
        "year",
        "city_code",
        trends="city_code" if spec.get("trends") else None,
        **common,
    )


@pytest.mark.parametrize("spec", [OLS, TRENDS, IV], ids=lambda s: s["id"])
def test_sharded_result_equals_the_api_call(tmp_path, spec):
    data = _data(seed=3)
    record = json.loads(_sharded(tmp_path, spec, data, 3))
    res = _api(spec, data)
    assert record["bootstrap_p"] == res.extra["bootstrap_p"]
    assert record["bootstrap_ci"] == list(res.extra["bootstrap_ci"])
    assert (record["coef"], record["se"], record["p"]) == (res.coef, res.se, res.p)
    assert record["regressor"] == res.regressor and record["nobs"] == res.nobs


def test_options_of_the_reduce_step_and_province_clusters(tmp_path):
    data = _data(seed=5)
    inference = {**INFERENCE, "variant": "wcu", "null_value": 0.1, "level": 0.9}
    draws = {**DRAWS, "cluster": "province", "weights": "webb"}
    record = json.loads(_sharded(tmp_path, OLS, data, 2, draws, inference))
    res = _api(
        OLS,
        data,
        variant="wcu",
        null=0.1,
        level=0.9,
        weights="webb",
        bootstrap_cluster="province_code",
    )
    assert record["bootstrap_p"] == res.extra["bootstrap_p"]
    assert record["bootstrap_ci"] == list(res.extra["bootstrap_ci"])
    assert record["bootstrap_cluster"] == "province" and record["bootstrap_clusters"] == 4
    assert record["enumerated"] and record["reps"] == 6**4  # 6^4 = 1,296 ≤ 2,500
    assert (record["method"], record["null_value"], record["level"]) == ("wcu", 0.1, 0.9)


def test_shard_blocks_partition_the_draws():
    for n_blocks in (1, 3, 10, 98):
        for shards in (1, 2, 3, 8, 13):
            ranges = [shard_blocks(n_blocks, shards, k) for k in range(shards)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n_blocks
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
            sizes = [b - a for a, b in ranges]
            assert max(sizes) - min(sizes) <= 1
    assert BLOCK == 1024


@pytest.mark.parametrize("G", [1, 2, 3, 7, 230, 2801])
def test_rademacher_draws_are_those_of_integers(G):
    """The Rademacher weights read from the bit generator are, bit for bit, the weights
    ``2·integers(0, 2) − 1`` of the same stream (the definition of the draws), for any number
    of clusters, seed and stream key, and for draw ranges that cut blocks."""
    from nqp_resilience.estimation.bootstrap import _draws, stream_key

    def reference(seed, key, start, stop):
        cols = []
        for b in range(start // BLOCK, (stop - 1) // BLOCK + 1):
            block = 2.0 * np.random.default_rng([seed, *key, b]).integers(0, 2, size=(BLOCK, G))
            lo, hi = max(start, b * BLOCK), min(stop, (b + 1) * BLOCK)
            cols.append((block - 1.0)[lo - b * BLOCK : hi - b * BLOCK].T)
        return np.concatenate(cols, axis=1)

    rng = np.random.default_rng(G)
    for seed in (0, 1, 20240601, int(rng.integers(2**62))):
        for key in ([], stream_key("baseline"), stream_key(f"spec{seed}")):
            for start, stop in ((0, BLOCK), (0, 2500), (700, 2100), (3 * BLOCK - 1, 3 * BLOCK)):
                got = _draws("rademacher", seed, start, stop, G, False, key)
                want = reference(seed, key, start, stop)
                assert got.shape == (G, stop - start) and got.flags.c_contiguous
                assert got.tobytes() == want.tobytes(), (seed, key, start, stop)


def test_shards_that_do_not_belong_together_are_refused(tmp_path):
    data = _data()
    problem = spec_problem(OLS, data, CONTROLS, DRAWS)
    paths = [tmp_path / f"s{k}.parquet" for k in range(3)]
    for k, path in enumerate(paths):
        write_shard(path, problem, OLS, DRAWS, k, 3)
    with pytest.raises(DataError, match="complete set") as info:
        read_shards(paths[:2])  # one missing
    assert info.value.hint and "forcerun" in info.value.hint
    with pytest.raises(DataError, match="complete set"):
        read_shards([paths[0], paths[1], paths[1]])  # one twice
    other = spec_problem(OLS, data, CONTROLS, {**DRAWS, "seed": 8})
    write_shard(paths[2], other, OLS, {**DRAWS, "seed": 8}, 2, 3)
    with pytest.raises(DataError, match="does not belong") as info:
        read_shards(paths)
    assert "draws" in str(info.value) and str(paths[2]) in str(info.value)
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="not a bootstrap shard"):
        read_shards([bad])


SPECS = {
    "desc": {"id": "desc", "estimator": "describe"},
    "base": {"id": "base", "estimator": "ols_fe"},
    "iv": {"id": "iv", "estimator": "iv_fe"},
    "psm": {"id": "psm", "estimator": "psm_fe"},
    "hc": {"id": "hc", "estimator": "ols_fe", "cluster": "none"},
}


def test_spec_selection():
    assert bootstrap_spec_ids("all-ols-and-iv", SPECS) == ["base", "iv"]
    assert bootstrap_spec_ids(["iv", "base"], SPECS) == ["base", "iv"]  # registry order
    cases = {
        "psm": ("Abadie and Imbens", "remove 'psm'"),
        "desc": ("no coefficient", "ols_fe and iv_fe"),
        "hc": ("cluster: none", "cluster: city"),
        "bse": ("unknown spec id", "did you mean 'base'"),
    }
    for sid, (message, hint) in cases.items():
        with pytest.raises(ConfigError, match=message) as info:
            bootstrap_spec_ids(["base", sid], SPECS)
        assert "bootstrap.specs[1]" in str(info.value) and hint in info.value.hint


def test_the_test_only_failure_switch(tmp_path):
    from nqp_resilience.errors import EstimationError
    from nqp_resilience.estimation.jobs import FAIL_SWITCH, injected_failure

    injected_failure("baseline", 0, {})  # no switch: nothing
    injected_failure("baseline", 1, {FAIL_SWITCH: "baseline/0:always"})  # another shard
    with pytest.raises(EstimationError, match="injected failure") as info:
        injected_failure("baseline", 0, {FAIL_SWITCH: "baseline/0:always"})
    assert FAIL_SWITCH in info.value.hint
    marker = tmp_path / "failed"
    once = {FAIL_SWITCH: f"baseline/0:once:{marker}"}
    with pytest.raises(EstimationError):
        injected_failure("baseline", 0, once)
    assert marker.exists()
    injected_failure("baseline", 0, once)  # the retry succeeds


def test_a_completed_shard_is_linked_back_not_recomputed(tmp_path, monkeypatch):
    data = _data()
    problem = spec_problem(OLS, data, CONTROLS, DRAWS)
    identity = {"code": "abc", "controls": CONTROLS}
    out, kept = tmp_path / "out" / "shard_1.parquet", tmp_path / "kept" / "shard_1.parquet"
    n, restored = write_shard(out, problem, OLS, DRAWS, 1, 3, completed=kept, identity=identity)
    assert not restored and n > 0
    assert os.path.samefile(out, kept)  # a hard link: no second copy on disk
    first = out.read_bytes()
    plain = tmp_path / "plain.parquet"
    write_shard(plain, problem, OLS, DRAWS, 1, 3)  # without a kept copy: no fingerprint
    assert read_columns(plain, ["AB"])["AB"].tobytes() == read_columns(out, ["AB"])["AB"].tobytes()

    # the scheduler deleted the output (a failed group job); the next attempt does not compute
    out.unlink()
    calls = []
    real = type(problem).stats
    monkeypatch.setattr(
        type(problem), "stats", lambda self, a, b: calls.append((a, b)) or real(self, a, b)
    )
    assert write_shard(out, problem, OLS, DRAWS, 1, 3, completed=kept, identity=identity) == (
        n,
        True,
    )
    assert calls == [] and out.read_bytes() == first and os.path.samefile(out, kept)

    # anything that changes the draws, the shard, the inputs or the code computes it again
    for case in [
        dict(draws={**DRAWS, "seed": 8}, k=1, identity=identity),
        dict(draws=DRAWS, k=2, identity=identity),
        dict(draws=DRAWS, k=1, identity={**identity, "code": "abd"}),
    ]:
        calls.clear()
        prob = spec_problem(OLS, data, CONTROLS, case["draws"])
        _, restored = write_shard(
            out, prob, OLS, case["draws"], case["k"], 3, completed=kept, identity=case["identity"]
        )
        assert not restored and len(calls) == 1, case
    # a damaged kept file is computed again, not trusted
    kept.unlink()
    kept.write_bytes(b"PAR1 damaged")
    calls.clear()
    assert write_shard(out, problem, OLS, DRAWS, 1, 3, completed=kept, identity=identity) == (
        n,
        False,
    )
    assert len(calls) == 1 and out.read_bytes() == first

    # kept shards read back like computed ones: the reduce step gives the same bytes
    paths = [tmp_path / "set" / f"shard_{k}.parquet" for k in range(3)]
    for k, path in enumerate(paths):
        keep = tmp_path / "set_kept" / path.name
        write_shard(path, problem, OLS, DRAWS, k, 3, completed=keep, identity=identity)
        path.unlink()
        assert write_shard(path, problem, OLS, DRAWS, k, 3, completed=keep, identity=identity)[1]
    meta, stats = read_shards(paths)
    plain_paths = [tmp_path / "plain_set" / f"shard_{k}.parquet" for k in range(3)]
    for k, path in enumerate(plain_paths):
        write_shard(path, problem, OLS, DRAWS, k, 3)
    meta2, stats2 = read_shards(plain_paths)
    assert stats.tobytes() == stats2.tobytes()
    assert json_safe(reduce_record(meta, stats, INFERENCE, OLS)) == json_safe(
        reduce_record(meta2, stats2, INFERENCE, OLS)
    )

    # a shard restored over its own link (the output is still in place): no temporary name left
    before = sorted(p.name for p in paths[0].parent.iterdir())
    keep = tmp_path / "set_kept" / paths[0].name
    assert write_shard(paths[0], problem, OLS, DRAWS, 0, 3, completed=keep, identity=identity)[1]
    assert sorted(p.name for p in paths[0].parent.iterdir()) == before
