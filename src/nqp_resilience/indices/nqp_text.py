"""Nqp1: NQP keyword frequency in government work reports (docs/indices.md, the paper's footnote ①).

Segmentation is jieba's (0.42.1, accurate mode without HMM) with the 46 keywords as a user
dictionary, given frequencies high enough that a keyword is always kept whole, rising with
length, so that where one keyword contains another the longer one wins (高新技术 is one token, so
the 新技术 inside it is not counted again). A token counts if it equals a keyword, so no
character is counted twice. Where two keywords merely overlap at their edges (科技创新 / 创新引领
in 科技创新引领), jieba's maximum-probability segmentation may credit a different keyword than a
greedy left-to-right longest match, but the number of keyword tokens is the same; the tests
check the totals against :func:`longest_match_count` on every shipped report.

:class:`KeywordCounter` runs jieba's segmentation (its prefix-dictionary DAG, the
maximum-probability route and the no-HMM cut, the same arithmetic in the same order) on its own,
without importing jieba, over a base dictionary from :mod:`nqp_resilience.indices.jieba_dict`
(the cache of rule ``jieba_cache``, or jieba's ``dict.txt`` parsed by jieba). jieba segments a
text block by block, a block being a maximal run of characters of its class ``_RE_HAN``, each
block on its own; a keyword token lies inside one block, so :meth:`KeywordCounter.count` finds
the blocks that contain a keyword in one regular-expression pass over the text and segments
only those, with the tokens jieba gives them. The tests compare the tokens with jieba's.

Unit. Nqp1 = keyword tokens / non-whitespace characters of the report: keywords per character,
a number around 0.003 (0.003 = 30 keywords per 10,000 characters). Per character, not per
10,000 characters, so that a regression coefficient on Nqp1 is of the order the paper prints
(Table 5 (3): 0.026, SE 0.113); per 10,000 characters the same estimate is 10⁴ times smaller
and reads 0.000 (0.000) in a three-decimal table.
"""

from __future__ import annotations

import re
from math import log
from pathlib import Path

from nqp_resilience.errors import DataError

_WS = re.compile(r"\s")
# jieba 0.42.1's block, whitespace and single-letter patterns (re_han_default, re_skip_default,
# re_eng), unchanged
_RE_HAN = re.compile(r"([\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]+)", re.U)
_RE_SKIP = re.compile(r"(\r\n|\s)", re.U)
_RE_ENG = re.compile(r"[a-zA-Z0-9]", re.U)
_HAN_CHAR = re.compile(r"[\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]", re.U)

#: user-dictionary frequency of a keyword per character: far above any word of jieba's
#: dictionary, rising with length
KEYWORD_FREQ = 10**7


def read_keywords(path) -> list[str]:
    """The keyword list: one per line, ``#`` comments and blank lines ignored."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]


class KeywordCounter:
    """Count keyword tokens in Chinese text with jieba's segmentation and a keyword user
    dictionary.

    ``dictionary``: the base dictionary (:func:`nqp_resilience.indices.jieba_dict.open_dictionary`);
    by default built from the installed jieba.
    """

    def __init__(self, keywords: list[str], dictionary=None):
        if dictionary is None:
            from nqp_resilience.indices.jieba_dict import jieba_base_dictionary

            dictionary = jieba_base_dictionary()
        self.keywords = list(dict.fromkeys(keywords))
        self._set = set(self.keywords)
        self._dict = dictionary
        self._freq = dictionary.initial()
        self._loaded: set[str] = set()
        # the entries a keyword or its prefixes replace are loaded before the keywords are
        # added, so that no entry loaded later can overwrite a keyword
        self._load(kw[:2] for kw in self.keywords if len(kw) > 1)
        total = dictionary.total
        # jieba's add_word(kw, freq): set the frequency, add it to the total (also for a word
        # already in the dictionary), prefixes not yet in the dictionary at 0. Frequencies rise
        # with length: where two keywords overlap, the longer one forms the more probable
        # segmentation; all are far above ordinary words
        for kw in sorted(self.keywords, key=len):
            freq = KEYWORD_FREQ * len(kw)
            self._freq[kw] = freq
            total += freq
            for end in range(1, len(kw) + 1):
                self._freq.setdefault(kw[:end], 0)
        self._total = total
        self._block_counts: dict[str, dict[str, int]] = {}
        # a keyword is a token only inside a block, or as a single character outside them
        in_blocks = [kw for kw in self.keywords if all(map(_HAN_CHAR.fullmatch, kw))]
        self._singles_outside = [
            kw for kw in self.keywords if len(kw) == 1 and not _HAN_CHAR.fullmatch(kw)
        ]
        by_len = sorted(in_blocks, key=len, reverse=True)
        self._kw_re = re.compile("|".join(map(re.escape, by_len))) if by_len else None

    # -- jieba's segmentation --------------------------------------------------------------

    def _load(self, bigrams) -> None:
        if self._dict.complete:
            return
        for bg in bigrams:
            if bg not in self._loaded:
                self._loaded.add(bg)
                self._freq.update(self._dict.bucket(bg))

    def _cut_block(self, sentence: str):
        """jieba's ``Tokenizer.__cut_DAG_NO_HMM`` of one block (``get_DAG`` and ``calc``)."""
        if not self._dict.complete:
            self._load(sentence[k : k + 2] for k in range(len(sentence) - 1))
        FREQ = self._freq  # jieba's names
        N = len(sentence)
        DAG = {}
        for k in range(N):
            tmplist = []
            i = k
            frag = sentence[k]
            while i < N and frag in FREQ:
                if FREQ[frag]:
                    tmplist.append(i)
                i += 1
                frag = sentence[k : i + 1]
            if not tmplist:
                tmplist.append(k)
            DAG[k] = tmplist
        route = {N: (0, 0)}
        logtotal = log(self._total)
        for idx in range(N - 1, -1, -1):
            route[idx] = max(
                (log(FREQ.get(sentence[idx : x + 1]) or 1) - logtotal + route[x + 1][0], x)
                for x in DAG[idx]
            )
        x = 0
        buf = ""
        while x < N:
            y = route[x][1] + 1
            l_word = sentence[x:y]
            if _RE_ENG.match(l_word) and len(l_word) == 1:
                buf += l_word
                x = y
            else:
                if buf:
                    yield buf
                    buf = ""
                yield l_word
                x = y
        if buf:
            yield buf

    def cut(self, text: str):
        """jieba's ``Tokenizer.cut(text, HMM=False)``."""
        for blk in _RE_HAN.split(text):
            if not blk:
                continue
            if _RE_HAN.match(blk):
                yield from self._cut_block(blk)
            else:
                for x in _RE_SKIP.split(blk):
                    if _RE_SKIP.match(x):
                        yield x
                    else:
                        yield from x

    def tokens(self, text: str) -> list[str]:
        return [t for t in self.cut(text) if t.strip()]

    def _keyword_blocks(self, text: str):
        """The blocks of ``text`` that contain a keyword, in order, each once."""
        if self._kw_re is None:
            return
        end = 0
        for m in self._kw_re.finditer(text):
            if m.start() < end:
                continue  # a further keyword of the block just segmented
            start = m.start()
            while start > 0 and _HAN_CHAR.match(text, start - 1):
                start -= 1
            end = _RE_HAN.match(text, m.start()).end()
            yield text[start:end]

    def count(self, text: str) -> dict[str, int]:
        """Occurrences of each keyword (only keywords that occur)."""
        out: dict[str, int] = {}
        memo = self._block_counts
        for blk in self._keyword_blocks(text):
            found = memo.get(blk)
            if found is None:  # a block is segmented the same wherever it occurs
                found = memo[blk] = {}
                for tok in self._cut_block(blk):
                    if tok in self._set:
                        found[tok] = found.get(tok, 0) + 1
            for tok, n in found.items():
                out[tok] = out.get(tok, 0) + n
        for kw in self._singles_outside:
            if n := text.count(kw):
                out[kw] = out.get(kw, 0) + n
        return out


def longest_match_count(text: str, keywords: list[str]) -> int:
    """Reference counter without jieba: greedy left-to-right longest match, no overlaps."""
    by_len = sorted(set(keywords), key=len, reverse=True)
    i, n = 0, 0
    while i < len(text):
        for kw in by_len:
            if text.startswith(kw, i):
                n += 1
                i += len(kw)
                break
        else:
            i += 1
    return n


def n_characters(text: str) -> int:
    """Characters of a report, whitespace excluded."""
    return len(text) - len(_WS.findall(text))


def nqp1_rows(
    texts: dict,
    keywords: list[str],
    province_codes,
    years,
    include_central: bool = False,
    dictionary=None,
) -> list[dict]:
    """The rows of :func:`nqp1_table` from ``texts`` ((province_code, year) -> report text)."""
    needed = sorted(set(province_codes)) + (["000000"] if include_central else [])
    for prov in needed:
        for year in years:
            if (prov, int(year)) not in texts:
                raise DataError(
                    f"reports/{prov}_{year}.txt",
                    "government work report missing",
                    row=f"province {prov}, year {year}",
                    expected="one UTF-8 text file per province and year",
                    hint="add the report (municipalities use their own report); Nqp1 cannot be "
                    "computed for this province-year without it",
                )
    counter = KeywordCounter(keywords, dictionary)
    cache: dict[tuple[str, int], tuple[int, int, dict]] = {}

    def measure(prov, year):
        if (prov, year) not in cache:
            text = texts[(prov, year)]
            counts = counter.count(text)
            cache[(prov, year)] = (sum(counts.values()), n_characters(text), counts)
        return cache[(prov, year)]

    rows = []
    for prov in sorted(set(province_codes)):
        for year in years:
            year = int(year)
            count, chars, counts = measure(prov, year)
            if include_central:
                c2, ch2, central = measure("000000", year)
                count, chars = count + c2, chars + ch2
                counts = {
                    k: counts.get(k, 0) + central.get(k, 0) for k in set(counts) | set(central)
                }
            top = ";".join(
                f"{k}:{v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
            )
            rows.append(
                {
                    "province_code": prov,
                    "year": year,
                    "keyword_count": count,
                    "n_chars": chars,
                    "Nqp1": count / chars,
                    "top_keywords": top,
                }
            )
    return rows


def nqp1_table(reports, keywords: list[str], province_codes, years, include_central: bool = False):
    """Nqp1, keywords per character (count / non-whitespace characters), for every province × year.

    Parameters
    ----------
    reports : DataFrame (province_code, year, text) from the ingest step
    keywords : the keyword list
    province_codes : provinces needed (the sample's provinces; municipalities are provinces)
    years : iterable of int
    include_central : add the central government's report of the same year (000000) to
        each province's text (count and characters both)

    A required report that is absent raises :class:`DataError` naming the expected file.
    """
    import pandas as pd

    have = {(r.province_code, int(r.year)): r.text for r in reports.itertuples()}
    rows = nqp1_rows(have, keywords, province_codes, years, include_central)
    return pd.DataFrame(rows)


#: the columns of the Nqp1 table and their kinds (the pandas dtypes of ``pd.DataFrame(rows)``)
NQP1_COLUMNS = {
    "province_code": "str",
    "year": "int64",
    "keyword_count": "int64",
    "n_chars": "int64",
    "Nqp1": "float64",
    "top_keywords": "str",
}


def write_nqp1(rows: list[dict], path) -> None:
    """Write the rows as :func:`nqp_resilience.data.io.write_parquet` writes
    ``pd.DataFrame(rows)``, byte for byte, without importing pandas
    (:func:`nqp_resilience.data.io.write_columns`)."""
    from nqp_resilience.data.io import write_columns

    columns = {name: (kind, [r[name] for r in rows]) for name, kind in NQP1_COLUMNS.items()}
    write_columns(columns, path)


def read_reports(path) -> dict:
    """(province_code, year) -> text of the ingested reports table, read without pandas."""
    from nqp_resilience.data.parquet import read_columns

    cols = read_columns(path, ["province_code", "year", "text"])
    return {
        (str(p), int(y)): t
        for p, y, t in zip(cols["province_code"], cols["year"], cols["text"], strict=True)
    }
