"""City identity: the attribute table and the alias list in ``resources/cities/``.

:class:`CityResolver` maps the (code, name) pair of a raw row to the 6-digit ``city_code`` of
the attribute table. It accepts the codes of the attribute table, predecessor and alias codes
(毕节地区 522400 -> 520500), and old names (襄樊市 -> 420600), and rejects anything else with
the closest known name as a hint.
"""

from __future__ import annotations

import csv
import difflib
import re
from dataclasses import dataclass

from nqp_resilience.errors import DataError

_CODE = re.compile(r"^\d{6}$")
_PROVINCE_CODE = re.compile(r"^\d{2}0000$")

#: Name cells of total and subtotal rows (spaces removed): national, provincial and whole-city
#: sums and the urban-district (市辖区) summary rows of yearbook tables.
TOTAL_LABELS = frozenset(
    {
        "合计",
        "总计",
        "小计",
        "全国",
        "全国合计",
        "全国总计",
        "全省",
        "全省合计",
        "全市",
        "全市合计",
        "市辖区",
        "地级市合计",
        "总体",
        "全部",
    }
)
#: Endings of name cells of subtotal rows, e.g. 河北省合计, 东部地区小计.
TOTAL_SUFFIXES = ("合计", "总计", "小计")


def read_attributes(path) -> list[dict]:
    """Rows of ``city_attributes.csv`` as dicts of strings (codes stay text)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def attributes_frame(path):
    """``city_attributes.csv`` as a DataFrame with codes as strings and flags as integers."""
    import pandas as pd

    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in df.columns:
        if col.startswith("is_") or col in {
            "adm_high",
            "changed_2011",
            "first_year_2010_2021",
            "last_year_2010_2021",
            "n_years_2010_2021",
        }:
            df[col] = df[col].replace("", "0").astype(int)
    return df


def normalise_code(value) -> str:
    """Return a 6-digit code string from ``130200``, ``130200.0`` or ``' 130200 '``."""
    text = str(value).strip()
    if text.endswith(".0"):
        text = text[:-2]
    return text


@dataclass(frozen=True)
class _Alias:
    city_code: str
    first: int | None
    last: int | None

    def valid(self, year) -> bool:
        if year is None or self.first is None:
            return True
        return self.first <= year <= (self.last if self.last is not None else self.first)


class CityResolver:
    """Resolve raw city identifiers to attribute-table codes.

    Parameters
    ----------
    attributes_path, aliases_path : path-like
        ``resources/cities/city_attributes.csv`` and ``city_name_aliases.csv``.
    """

    def __init__(self, attributes_path, aliases_path):
        rows = read_attributes(attributes_path)
        self.names = {r["city_code"]: r["city_name"] for r in rows}
        self.province = {r["city_code"]: r["province_code"] for r in rows}
        self.by_name = {r["city_name"]: r["city_code"] for r in rows}
        self.province_names = {r["province_code"]: r["province_name"] for r in rows}
        self._province_name_set = frozenset(self.province_names.values())
        self.alias_codes: dict[str, _Alias] = {}
        self.alias_names: dict[str, _Alias] = {}
        with open(aliases_path, encoding="utf-8", newline="") as fh:
            for r in csv.DictReader(fh):
                first, last = _parse_years(r["alias_valid_2010_2021"])
                alias = _Alias(r["city_code"], first, last)
                for code in filter(None, r["alias_code"].split(";")):
                    if code != r["city_code"]:
                        self.alias_codes[code] = alias
                for name in filter(None, r["alias_name"].split(";")):
                    self.alias_names[name] = alias

    def is_known_code(self, code) -> bool:
        """True if ``code`` is an attribute-table code or an alias code."""
        code = normalise_code(code)
        return code in self.names or code in self.alias_codes

    def totals_label(self, code, name) -> str | None:
        """Why a row with this (code, name) is a total or subtotal and not a city, or ``None``.

        Totals are the national code 000000, a province code (``xx0000``) that is not itself a
        city (the municipalities 110000, 120000, 310000 and 500000 are), a province name that is
        not a city name, or a label such as 合计 / 全国 / 全市 / 市辖区 without a known city code.
        A known city code or city name always makes the row a city's (a mistyped code such as
        130000 for 石家庄市 is then reported, not skipped).
        """
        code = normalise_code(code) if code not in (None, "") else ""
        if code and self.is_known_code(code):
            return None
        label = re.sub(r"\s+", "", str(name or ""))
        if label in self.by_name or label in self.alias_names:
            return None  # a city's row under a mistyped code: the resolver reports the code
        if code == "000000":
            return f"code {code}"
        if code and _PROVINCE_CODE.match(code):
            return f"province code {code}" + (f" ({label})" if label else "")
        if label in TOTAL_LABELS or label.endswith(TOTAL_SUFFIXES):
            return label
        if (
            label
            and label not in self.by_name
            and label not in self.alias_names
            and label in self._province_name_set
        ):
            return f"province {label}"
        return None

    def known_name(self, code: str, name: str) -> bool:
        """True if ``name`` is the attribute-table name of ``code`` or one of its aliases."""
        if self.names.get(code) == name:
            return True
        alias = self.alias_names.get(name)
        return alias is not None and alias.city_code == code

    def resolve(self, code, name, *, year=None, file="?", row="?") -> str:
        """Return the attribute-table code for a raw (code, name) pair.

        Raises :class:`DataError` for an unknown code or name, or a code and name that refer to
        different cities. ``row`` is the row's label in such a message, or a function giving
        it (the ingest builds a label only for a message).
        """
        code = normalise_code(code) if code not in (None, "") else ""
        name = str(name).strip() if name is not None else ""
        if code:
            if not _CODE.match(code):
                raise DataError(
                    file,
                    f"city code {code!r} is not a 6-digit administrative division code",
                    row=_label(row),
                    column="city code",
                    expected="6 digits, e.g. 130200",
                    hint="check that the column was not read as a number with digits lost",
                )
            if code in self.names:
                if name and not self.known_name(code, name) and name in self.by_name:
                    raise DataError(
                        file,
                        f"city code {code} is {self.names[code]} in the attribute table, "
                        f"but the row names {name} ({self.by_name[name]})",
                        row=_label(row),
                        column="city name",
                        hint="fix the code or the name in the extract",
                    )
                return code
            alias = self.alias_codes.get(code)
            if alias is not None:
                return alias.city_code
            if name in self.by_name or name in self.alias_names:
                known = self.by_name.get(name) or self.alias_names[name].city_code
                hint = (
                    f"the name {name} is city code {known} in the attribute table; "
                    "is the code mistyped?"
                )
            else:
                hint = self._hint(name)
            raise DataError(
                file,
                f"unknown city code {code}" + (f" ({name})" if name else ""),
                row=_label(row),
                column="city code",
                expected="a code in resources/cities/city_attributes.csv",
                hint=hint,
            )
        if name in self.by_name:
            return self.by_name[name]
        if name in self.alias_names:
            return self.alias_names[name].city_code
        raise DataError(
            file,
            f"unknown city name {name!r} and no city code",
            row=_label(row),
            column="city name",
            expected="a name in resources/cities/city_attributes.csv or city_name_aliases.csv",
            hint=self._hint(name),
        )

    def _hint(self, name: str) -> str:
        close = difflib.get_close_matches(
            name, list(self.by_name) + list(self.alias_names), n=3, cutoff=0.5
        )
        base = "add the old name or code to resources/cities/city_name_aliases.csv"
        if close:
            return f"closest known names: {', '.join(close)}; if it is one of them, {base}"
        return base


def _label(row) -> str:
    return row() if callable(row) else row


def _parse_years(text: str):
    text = (text or "").strip()
    if not text:
        return None, None
    parts = text.split("-")
    first = int(parts[0])
    last = int(parts[1]) if len(parts) > 1 else first
    return first, last
