"""Nqp1 keyword counting: jieba with the keyword list as user dictionary, longest match,
no double counting, Nqp1 in keywords per non-whitespace character. Expected numbers are literal.

The counter runs jieba's segmentation on its own over a base dictionary from the cache of rule
``jieba_cache``; the tests compare its tokens with a real ``jieba.Tokenizer`` built from jieba's
``dict.txt`` (no cache), and check that a stale or damaged cache never changes a count."""

from __future__ import annotations

import logging
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from nqp_resilience.data.io import write_parquet
from nqp_resilience.errors import DataError
from nqp_resilience.indices import jieba_dict
from nqp_resilience.indices.jieba_dict import (
    CachedDictionary,
    CacheError,
    build_cache,
    jieba_dictionary_file,
    open_dictionary,
)
from nqp_resilience.indices.jobs import nqp_text_job
from nqp_resilience.indices.nqp_text import (
    KeywordCounter,
    longest_match_count,
    n_characters,
    nqp1_rows,
    nqp1_table,
    write_nqp1,
)
from nqp_resilience.indices.nqp_text import read_keywords as read_keywords_text
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


# ----------------------------------------------------------------- the jieba dictionary cache


@pytest.fixture(scope="module")
def cache_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache") / "jieba.cache"
    info = build_cache(path)
    assert info["entries"] > 400_000 and info["jieba_version"] == "0.42.1"
    return path


def jieba_tokenizer(keywords, tmp_dir):
    """A real jieba tokenizer as the counter used to be: the keywords added with add_word,
    the prefix dictionary built from dict.txt (a fresh cache folder, so no jieba cache)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    tok.tmp_dir = str(tmp_dir)
    tok.initialize()
    for kw in sorted(dict.fromkeys(keywords), key=len):
        tok.add_word(kw, freq=10**7 * len(kw))
    return tok


def jieba_tokens(tok, text) -> list[str]:
    return [t for t in tok.cut(text, HMM=False) if t.strip()]


def jieba_counts(tok, keywords, text) -> dict[str, int]:
    return dict(Counter(t for t in jieba_tokens(tok, text) if t in set(keywords)))


@pytest.fixture(scope="module")
def reference(keywords, tmp_path_factory):
    return jieba_tokenizer(keywords, tmp_path_factory.mktemp("jieba"))


@pytest.fixture(scope="module")
def cached_counter(keywords, cache_file) -> KeywordCounter:
    return KeywordCounter(keywords, CachedDictionary(cache_file))


def test_read_keywords_same_as_the_simulators():
    assert read_keywords_text(KEYWORDS_FILE) == read_keywords(KEYWORDS_FILE)


def test_block_patterns_are_jiebas():
    import jieba

    from nqp_resilience.indices import nqp_text

    pairs = [
        (nqp_text._RE_HAN, jieba.re_han_default),
        (nqp_text._RE_SKIP, jieba.re_skip_default),
        (nqp_text._RE_ENG, jieba.re_eng),
    ]
    chars = [chr(c) for c in range(0x10000)]
    for ours, theirs in pairs:
        assert [bool(ours.match(c)) for c in chars] == [bool(theirs.match(c)) for c in chars]
    assert [bool(nqp_text._HAN_CHAR.fullmatch(c)) for c in chars] == [
        bool(jieba.re_han_default.fullmatch(c)) for c in chars
    ]


def test_cached_tokens_and_counts_equal_jieba_on_shipped_reports(
    cached_counter, reference, keywords
):
    paths = sorted(REPORTS.glob("*.txt"))
    assert paths
    for path in paths:
        text = path.read_text(encoding="utf-8-sig")
        expected = jieba_tokens(reference, text)
        assert cached_counter.tokens(text) == expected, path.name
        assert cached_counter.count(text) == jieba_counts(reference, keywords, text), path.name


ADVERSARIAL = [
    OVERLAP_TEXT,
    "",
    "科技创新引领高质量发展",  # edge overlap: 科技创新 / 创新引领
    "科技创新引领科技创新引领，科技创新引领。",  # the same block again (memoised)
    "高新技术新技术高新技术产业数字化转型数字经济核心技术突破重大突破",
    "新质生产力新质生产力新质生产力",
    "数字化转型数字化转型数字经济数字经济高质量发展高质量发展",
    "5G新技术abc人工智能AI新能源2024年",  # letters and digits glued to keywords
    "高新 技术\n新技\t术　人工\u3000智能",  # whitespace inside keywords: no keyword
    "高新技术，新技术；人工智能、新能源！数字经济？",
    "（高新技术）《新技术》“人工智能”——新能源……",
    "高新技术\r\n新技术\r\n",
    "新新新技技技术术术高高新新技技术术",
]


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_cached_tokens_equal_jieba_on_adversarial_strings(cached_counter, reference, text):
    assert cached_counter.tokens(text) == jieba_tokens(reference, text)
    assert cached_counter.count(text) == jieba_counts(reference, cached_counter.keywords, text)


def test_cached_counts_equal_jieba_on_random_keyword_soup(cached_counter, reference, keywords):
    """Strings made of keywords, their pieces and common words glued together, so that
    keywords overlap in every way the list allows."""
    rng = random.Random(20240607)
    pieces = keywords + [kw[i:j] for kw in keywords for i in range(len(kw)) for j in (i + 1, i + 2)]
    pieces += ["发展", "推动", "加快", "产业", "的", "和", "，", "。", " ", "A", "1"]
    for _ in range(1500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 14)))
        assert cached_counter.tokens(text) == jieba_tokens(reference, text), text
        assert cached_counter.count(text) == jieba_counts(reference, keywords, text), text


def test_other_keyword_lists_equal_jieba(cache_file, tmp_path):
    """Keywords with letters and digits, a single character, a character outside jieba's
    blocks, and one that contains another, as jieba counts them."""
    keywords = ["5G", "AI", "新", "@", "人工智能", "智能", "智能制造", "IT技术", "新技术"]
    counter = KeywordCounter(keywords, CachedDictionary(cache_file))
    tok = jieba_tokenizer(keywords, tmp_path)
    texts = [
        "5G和AI推动智能制造，新技术@新能源 @ 人工智能IT技术5GAI",
        "AIAI 5G5G 新新 @@ 智能智能制造人工智能",
        "新",
        "@",
    ]
    for text in texts:
        assert counter.tokens(text) == jieba_tokens(tok, text), text
        assert counter.count(text) == jieba_counts(tok, keywords, text), text


def test_uncached_counter_equals_cached(counter, cached_counter):
    for path in sorted(REPORTS.glob("*.txt"))[:40]:
        text = path.read_text(encoding="utf-8-sig")
        assert counter.count(text) == cached_counter.count(text)


def _dict_copy(tmp_path, name="dict.txt", edit=None) -> Path:
    data = jieba_dictionary_file().read_bytes()
    if edit is not None:
        data = edit(data)
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_cache_of_another_jieba_dictionary_is_refused(tmp_path, monkeypatch, keywords):
    # same size, one frequency changed (的 318825 -> 318826): only the checksum tells
    original = jieba_dictionary_file().read_bytes()
    assert b"\n\xe7\x9a\x84 318825 uj\n" in original
    other = _dict_copy(
        tmp_path, edit=lambda d: d.replace(b"\n\xe7\x9a\x84 318825 ", b"\n\xe7\x9a\x84 318826 ")
    )
    assert other.stat().st_size == len(original)
    monkeypatch.setattr(jieba_dict, "jieba_dictionary_file", lambda: other)
    build_cache(tmp_path / "other.cache")
    monkeypatch.undo()
    with pytest.raises(CacheError) as info:
        CachedDictionary(tmp_path / "other.cache")
    assert "another jieba dictionary" in str(info.value)
    assert "--forcerun jieba_cache" in str(info.value)


def test_cache_of_a_touched_but_equal_dictionary_is_used(tmp_path, monkeypatch, cache_file):
    copy = _dict_copy(tmp_path)  # the same bytes, another modification time
    monkeypatch.setattr(jieba_dict, "jieba_dictionary_file", lambda: copy)
    assert CachedDictionary(cache_file).total == 60101967


def _damaged(tmp_path, cache_file, how) -> Path:
    data = bytearray(cache_file.read_bytes())
    if how == "truncated":
        data = data[: len(data) - 1000]
    elif how == "empty":
        data = bytearray()
    elif how == "garbage":
        data = bytearray(b"not a cache at all\n" * 100)
    elif how == "header":
        data[len(jieba_dict.MAGIC) + 40] ^= 0xFF
    path = tmp_path / f"{how}.cache"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage", "header"])
def test_damaged_cache_is_refused(tmp_path, cache_file, how):
    with pytest.raises(CacheError):
        CachedDictionary(_damaged(tmp_path, cache_file, how))
    with pytest.raises(CacheError):
        CachedDictionary(tmp_path / "missing.cache")


def test_cache_of_another_layout_is_refused(cache_file, monkeypatch):
    monkeypatch.setattr(jieba_dict, "FORMAT", jieba_dict.FORMAT + 1)
    with pytest.raises(CacheError, match="layout version"):
        CachedDictionary(cache_file)


def _damage_block(tmp_path, cache_file, char="高") -> Path:
    """The cache with one byte of the block of ``char`` flipped (the header stays valid)."""
    d = CachedDictionary(cache_file)
    offset, length, _ = d._index[char]
    data = bytearray(cache_file.read_bytes())
    data[d._base + offset + length // 2] ^= 0x01
    path = tmp_path / "block.cache"
    path.write_bytes(bytes(data))
    return path


def test_damaged_block_is_refused_when_read(tmp_path, cache_file, keywords):
    path = _damage_block(tmp_path, cache_file)
    with pytest.raises(CacheError, match="block checksum"):
        KeywordCounter(keywords, CachedDictionary(path))  # 高新技术 etc. need the block of 高


def test_open_dictionary_falls_back_to_jieba(tmp_path, cache_file, caplog):
    log = logging.getLogger("test_text")
    with caplog.at_level(logging.WARNING, logger="test_text"):
        d = open_dictionary(_damaged(tmp_path, cache_file, "truncated"), log)
    assert d.complete and d.total == 60101967
    assert "truncated" in caplog.text and "built from jieba instead" in caplog.text
    assert not open_dictionary(cache_file, log).complete
    assert open_dictionary(None, log).complete


def _job_inputs(tmp_path) -> SimpleNamespace:
    panel = tmp_path / "panel.parquet"
    write_parquet(
        pd.DataFrame({"province_code": ["110000", "130000"] * 2, "year": [2015, 2015, 2016, 2016]}),
        panel,
    )
    reports = tmp_path / "reports.parquet"
    write_parquet(reports_frame(), reports)
    return SimpleNamespace(panel=str(panel), reports=str(reports), keywords=str(KEYWORDS_FILE))


def _run_job(inputs, cache, out, include_central=True) -> bytes:
    inputs = SimpleNamespace(**vars(inputs), jieba_cache=str(cache) if cache else None)
    if cache is None:
        del inputs.jieba_cache  # as the Monte Carlo study calls the job
    smk = SimpleNamespace(
        input=inputs,
        output=SimpleNamespace(table=str(out)),
        params=SimpleNamespace(include_central=include_central),
        log=[],
    )
    nqp_text_job(smk)
    return Path(out).read_bytes()


def test_job_output_equals_pandas_table_with_and_without_cache(
    tmp_path, cache_file, keywords, caplog
):
    inputs = _job_inputs(tmp_path)
    expected_path = tmp_path / "expected.parquet"
    write_parquet(
        nqp1_table(reports_frame(), keywords, ["110000", "130000"], [2015, 2016], True),
        expected_path,
    )
    expected = expected_path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="nqp_resilience"):
        assert _run_job(inputs, cache_file, tmp_path / "a.parquet") == expected
        assert _run_job(inputs, None, tmp_path / "b.parquet") == expected
        assert caplog.text == ""
        # stale or damaged caches: a warning, the same table
        for how in ("truncated", "garbage"):
            damaged = _damaged(tmp_path, cache_file, how)
            assert _run_job(inputs, damaged, tmp_path / f"{how}.parquet") == expected
        damaged = _damage_block(tmp_path, cache_file)
        assert _run_job(inputs, damaged, tmp_path / "block.parquet") == expected
    assert caplog.text.count("built from jieba instead") == 3
    assert "block checksum" in caplog.text


def test_pyarrow_writer_equals_pandas_on_shipped_reports(tmp_path, cached_counter, keywords):
    texts = {}
    for path in sorted(REPORTS.glob("*.txt")):
        prov, year = path.stem.split("_")
        texts[(prov, int(year))] = path.read_text(encoding="utf-8-sig")
    provinces = sorted({p for p, _ in texts if p != "000000"})
    years = sorted({y for _, y in texts})
    for include_central in (False, True):
        rows = nqp1_rows(texts, keywords, provinces, years, include_central)
        write_nqp1(rows, tmp_path / "arrow.parquet")
        write_parquet(pd.DataFrame(rows), tmp_path / "pandas.parquet")
        assert (tmp_path / "arrow.parquet").read_bytes() == (
            tmp_path / "pandas.parquet"
        ).read_bytes()


def test_job_imports_neither_pandas_nor_jieba(tmp_path, cache_file):
    """The job reads the cache and runs jieba's segmentation itself: importing pandas and
    jieba would take longer than the counting."""
    inputs = _job_inputs(tmp_path)
    code = (
        "import sys\n"
        "from types import SimpleNamespace as NS\n"
        "from nqp_resilience.indices.jobs import nqp_text_job\n"
        f"nqp_text_job(NS(input=NS(panel={inputs.panel!r}, reports={inputs.reports!r}, "
        f"keywords={inputs.keywords!r}, jieba_cache={str(cache_file)!r}), "
        f"output=NS(table={str(tmp_path / 'out.parquet')!r}), "
        "params=NS(include_central=False), log=[]))\n"
        "print(sorted(m for m in ('pandas', 'jieba') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr
    shutil.rmtree(tmp_path, ignore_errors=True)
