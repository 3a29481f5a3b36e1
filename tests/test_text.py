"""Nqp1 keyword counting: jieba with the keyword list as user dictionary, longest match,
no double counting, Nqp1 in keywords per non-whitespace character. Expected numbers are literal."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nqp_resilience.errors import DataError
from nqp_resilience.indices.nqp_text import (
    KeywordCounter,
    longest_match_count,
    n_characters,
    nqp1_table,
)
from nqp_resilience.sim.simulate import read_keywords

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS_FILE = ROOT / "resources" / "nqp_keywords.txt"
REPORTS = ROOT / "resources" / "raw" / "reports"


@pytest.fixture(scope="module")
def keywords() -> list[str]:
    return read_keywords(KEYWORDS_FILE)


@pytest.fixture(scope="module")
def counter(keywords) -> KeywordCounter:
    return KeywordCounter(keywords)


def test_keyword_list(keywords):
    assert len(keywords) == 46 == len(set(keywords))
    assert keywords[0] == "新质生产力" and keywords[-1] == "核心技术突破"
    # the overlaps the hand-worked text relies on are all real keywords
    for kw in (
        "高新技术",
        "新技术",
        "核心技术突破",
        "重大突破",
        "数字化转型",
        "数字经济",
        "高质量发展",
    ):
        assert kw in keywords


# 坚持 高质量发展 ， 发展 高新技术 产业 和 新技术 ， 推进 核心技术突破 与 重大突破 ，
# 培育 新质生产力 ， 加快 数字化转型 数字经济 融合 发展 。 高新技术 企业 增长 。
OVERLAP_TEXT = (
    "坚持高质量发展，发展高新技术产业和新技术，推进核心技术突破与重大突破，培育新质生产力，"
    "加快数字化转型数字经济融合发展。高新技术企业增长。"
)


def test_count_overlapping_keywords(counter):
    assert counter.count(OVERLAP_TEXT) == {
        "高质量发展": 1,  # once; "发展" alone and "融合发展" are not keywords
        # twice, each as one token: the 新技术 inside 高新技术 is NOT counted again
        "高新技术": 2,
        "新技术": 1,  # only the free-standing 新技术 after 和
        # one token; it contains no other keyword (技术, 突破, 核心技术 are not keywords)
        "核心技术突破": 1,
        "重大突破": 1,  # separate keyword after 与
        # not split (生产力 alone is no keyword; 提高生产力/提升生产力 do not occur)
        "新质生产力": 1,
        "数字化转型": 1,  # 数字化转型 directly followed by 数字经济: both counted, once each
        "数字经济": 1,
    }
    # total 1 + 2 + 1 + 1 + 1 + 1 + 1 + 1 = 9 keyword tokens; the jieba-free reference agrees
    assert sum(counter.count(OVERLAP_TEXT).values()) == 9
    assert longest_match_count(OVERLAP_TEXT, counter.keywords) == 9


def test_keyword_tokens_kept_whole(counter):
    toks = counter.tokens("高新技术核心技术突破新质生产力")
    assert toks == ["高新技术", "核心技术突破", "新质生产力"]
    assert "新技术" not in toks


@pytest.mark.parametrize(
    "text, expected",
    [
        ("高新技术", {"高新技术": 1}),  # not 新技术
        ("新技术", {"新技术": 1}),
        ("创新经济", {"创新经济": 1}),  # not 新经济
        ("高效能高性能高效率", {"高效能": 1, "高性能": 1, "高效率": 1}),
        ("新经济新业态", {"新经济": 1, "新业态": 1}),
        ("好好学习", {}),
    ],
)
def test_count_small_cases(counter, text, expected):
    assert counter.count(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("高新技术", 1),  # the longest keyword at 高 wins; 新技术 is not counted again
        ("数字化转型数字经济", 2),
        ("核心技术突破", 1),
        ("新技术驱动", 1),  # greedy: 新技术 | 驱动 (技术驱动 overlaps it and is not counted)
        ("", 0),
        ("没有关键词", 0),
    ],
)
def test_longest_match_count(keywords, text, expected):
    assert longest_match_count(text, keywords) == expected


def test_n_characters_excludes_whitespace():
    # 高新 技术\n\t新能源　(ideographic space U+3000) → 高新 + 技术 + 新能源 = 2 + 2 + 3 = 7
    assert n_characters("高新 技术\n\t新能源\u3000") == 7
    assert n_characters("  \n") == 0
    assert n_characters("新质生产力，。") == 7  # punctuation counts


FILL = "好"  # in no keyword


def reports_frame(drop=()) -> pd.DataFrame:
    texts = {
        # 2 keywords (新质生产力, 人工智能);
        #   11 + 39 = 50 non-whitespace characters (the "\n" does not count)
        ("110000", 2015): "新质生产力，人工智能。\n" + FILL * 39,
        # 2 keywords (高新技术, 新技术);
        #   4 + 3 + 93 = 100 characters (the space and "\n" do not count)
        ("110000", 2016): "高新技术 新技术\n" + FILL * 93,
        # 1 keyword (数字经济); 4 + 196 = 200 characters
        ("130000", 2015): "数字经济" + FILL * 196,
        # 0 keywords; 250 characters
        ("130000", 2016): FILL * 250,
        # central: 2 keywords (数字化转型, 数字经济); 9 + 41 = 50 characters
        ("000000", 2015): "数字化转型数字经济" + FILL * 41,
        # central: 1 keyword (新能源); 3 + 97 = 100 characters
        ("000000", 2016): "新能源" + FILL * 97,
    }
    rows = [
        {"province_code": p, "year": y, "text": t}
        for (p, y), t in texts.items()
        if (p, y) not in drop
    ]
    return pd.DataFrame(rows)


def test_nqp1_table_province_only(keywords):
    t = nqp1_table(
        reports_frame(), keywords, ["130000", "110000"], [2015, 2016], include_central=False
    )
    assert list(t.columns) == [
        "province_code",
        "year",
        "keyword_count",
        "n_chars",
        "Nqp1",
        "top_keywords",
    ]
    assert t["province_code"].tolist() == ["110000", "110000", "130000", "130000"]
    assert t["year"].tolist() == [2015, 2016, 2015, 2016]
    assert t["keyword_count"].tolist() == [2, 2, 1, 0]
    assert t["n_chars"].tolist() == [50, 100, 200, 250]
    assert t["Nqp1"].tolist() == pytest.approx(
        [
            0.04,  # 2 / 50 keywords per character
            0.02,  # 2 / 100
            0.005,  # 1 / 200
            0.0,  # 0 / 250
        ],
        rel=1e-12,
    )
    # sorted by count desc, then keyword (code point: 新 U+65B0 < 高 U+9AD8)
    assert t["top_keywords"].tolist() == [
        "人工智能:1;新质生产力:1",
        "新技术:1;高新技术:1",
        "数字经济:1",
        "",
    ]


def test_nqp1_table_with_central_report(keywords):
    t = nqp1_table(
        reports_frame(), keywords, ["110000", "130000"], [2015, 2016], include_central=True
    )
    assert t["keyword_count"].tolist() == [4, 3, 3, 1]  # province + central (2015: +2, 2016: +1)
    assert t["n_chars"].tolist() == [
        100,
        200,
        250,
        350,
    ]  # province + central (2015: +50, 2016: +100)
    assert t["Nqp1"].tolist() == pytest.approx(
        [
            0.04,  # 110000 2015: (2 + 2) / (50 + 50)
            0.015,  # 110000 2016: (2 + 1) / (100 + 100)
            0.012,  # 130000 2015: (1 + 2) / (200 + 50)
            0.002857142857142857,  # 130000 2016: (0 + 1) / (250 + 100) = 1/350
        ],
        rel=1e-12,
    )
    assert "000000" not in set(t["province_code"])  # the central report is no row of its own


def test_nqp1_table_missing_province_report(keywords):
    with pytest.raises(DataError) as info:
        nqp1_table(
            reports_frame(drop={("130000", 2016)}), keywords, ["110000", "130000"], [2015, 2016]
        )
    err = info.value
    assert err.file == "reports/130000_2016.txt"
    assert "reports/130000_2016.txt" in str(err)
    assert "province 130000" in str(err) and "year 2016" in str(err)
    assert "missing" in err.problem


def test_nqp1_table_missing_central_report_only_matters_when_included(keywords):
    reports = reports_frame(drop={("000000", 2016)})
    t = nqp1_table(reports, keywords, ["110000"], [2015, 2016], include_central=False)
    assert t["Nqp1"].tolist() == pytest.approx([0.04, 0.02], rel=1e-12)
    with pytest.raises(DataError) as info:
        nqp1_table(reports, keywords, ["110000"], [2015, 2016], include_central=True)
    assert info.value.file == "reports/000000_2016.txt"
    assert "province 000000" in str(info.value) and "year 2016" in str(info.value)


def test_shipped_reports_jieba_equals_longest_match(counter, keywords):
    paths = sorted(REPORTS.glob("*.txt"))
    assert paths, "no shipped reports"
    total = 0
    mismatches = []
    for path in paths:
        text = path.read_text(encoding="utf-8-sig")
        jieba_n = sum(counter.count(text).values())
        ref_n = longest_match_count(text, keywords)
        if jieba_n != ref_n:
            mismatches.append((path.name, jieba_n, ref_n))
        total += jieba_n
    assert mismatches == []
    assert total > 0
