"""The README's Python API examples run as written (docs/design.md#python-api)."""

from __future__ import annotations

import re

from conftest import ROOT


def _api_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_every_api_function_has_a_runnable_example(capsys):
    blocks = _api_blocks()
    joined = "\n".join(blocks)
    for name in ("twfe(", "iv_twfe(", "psm(", "entropy_weights(", "wild_cluster_bootstrap("):
        assert name in joined, name
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert len(out.splitlines()) >= 5
    # the examples recover what they plant: slope 0.3 within 3 SEs
    res = namespace["res"]
    assert abs(res.coef - 0.3) < 3 * res.se
    iv = namespace["iv"]
    assert abs(iv.coef - 0.3) < 3 * iv.se
