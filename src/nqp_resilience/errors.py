"""The project's own exception types for user errors (bad data, bad config).

A user error says where (file, row as city and year, column), what was expected, what was
found, and how to fix it. Bugs may raise anything else; user errors raise these.
"""

from __future__ import annotations


class ProjectError(Exception):
    """Base class of every user-facing error of the workflow."""


class DataError(ProjectError):
    """Malformed raw or intermediate data.

    Parameters
    ----------
    file : str
        Path of the offending file.
    problem : str
        What is wrong, in one sentence.
    row : str, optional
        The row, as people know it: ``"line 12 (city 130200 唐山市, year 2015)"``.
    column : str, optional
        The raw header and, where known, the canonical name.
    expected : str, optional
        What the workflow expected to find.
    hint : str, optional
        How to fix it.
    """

    def __init__(self, file, problem, *, row=None, column=None, expected=None, hint=None):
        self.file = str(file)
        self.problem = problem
        self.row = row
        self.column = column
        self.expected = expected
        self.hint = hint
        super().__init__(self._message())

    def _message(self) -> str:
        where = [f"file {self.file}"]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        lines = [", ".join(where) + ":", f"  problem:  {self.problem}"]
        if self.expected is not None:
            lines.append(f"  expected: {self.expected}")
        if self.hint is not None:
            lines.append(f"  hint:     {self.hint}")
        return "\n".join(lines)


class ConfigError(ProjectError):
    """Invalid configuration: unknown key, wrong type, or a reference to something unknown."""

    def __init__(self, key, problem, *, hint=None, source="config.yaml"):
        self.key = key
        self.problem = problem
        self.hint = hint
        self.source = source
        msg = f"{source}, key '{key}': {problem}"
        if hint:
            msg += f"\n  hint: {hint}"
        super().__init__(msg)
