"""Nqp1: NQP keyword frequency in government work reports (docs/indices.md, the paper's footnote ①).

Segmentation uses jieba with the 46 keywords as a user dictionary, given frequencies high
enough that a keyword is always kept whole, rising with length, so that where one keyword
contains another the longer one wins (高新技术 is one token, so the 新技术 inside it is not
counted again). A token counts if it equals a keyword, so no character is counted twice.
Where two keywords merely overlap at their edges (科技创新 / 创新引领 in 科技创新引领), jieba's
maximum-probability segmentation may credit a different keyword than a greedy left-to-right
longest match, but the number of keyword tokens is the same; the tests check the totals
against :func:`longest_match_count` on every shipped report.

Unit. Nqp1 = keyword tokens / non-whitespace characters of the report: keywords per character,
a number around 0.003 (0.003 = 30 keywords per 10,000 characters). Per character, not per
10,000 characters, so that a regression coefficient on Nqp1 is of the order the paper prints
(Table 5 (3): 0.026, SE 0.113); per 10,000 characters the same estimate is 10⁴ times smaller
and reads 0.000 (0.000) in a three-decimal table.
"""

from __future__ import annotations

import re

from nqp_resilience.errors import DataError

_WS = re.compile(r"\s+")


class KeywordCounter:
    """Count keyword tokens in Chinese text with jieba and a keyword user dictionary."""

    def __init__(self, keywords: list[str]):
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        self.keywords = list(dict.fromkeys(keywords))
        self._set = set(self.keywords)
        self._tok = jieba.Tokenizer()
        self._tok.initialize()
        # frequencies rise with length: where two keywords overlap, the longer one forms the
        # more probable segmentation; all are far above ordinary words
        for kw in sorted(self.keywords, key=len):
            self._tok.add_word(kw, freq=10**7 * len(kw))

    def tokens(self, text: str) -> list[str]:
        return [t for t in self._tok.cut(text, HMM=False) if t.strip()]

    def count(self, text: str) -> dict[str, int]:
        """Occurrences of each keyword (only keywords that occur)."""
        out: dict[str, int] = {}
        for tok in self.tokens(text):
            if tok in self._set:
                out[tok] = out.get(tok, 0) + 1
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
    return len(_WS.sub("", text))


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
    needed = sorted(set(province_codes)) + (["000000"] if include_central else [])
    for prov in needed:
        for year in years:
            if (prov, int(year)) not in have:
                raise DataError(
                    f"reports/{prov}_{year}.txt",
                    "government work report missing",
                    row=f"province {prov}, year {year}",
                    expected="one UTF-8 text file per province and year",
                    hint="add the report (municipalities use their own report); Nqp1 cannot be "
                    "computed for this province-year without it",
                )
    counter = KeywordCounter(keywords)
    cache: dict[tuple[str, int], tuple[int, int, dict]] = {}

    def measure(prov, year):
        if (prov, year) not in cache:
            text = have[(prov, year)]
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
    return pd.DataFrame(rows)
