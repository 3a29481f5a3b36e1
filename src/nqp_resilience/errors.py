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
    """Invalid configuration: unknown key, wrong type, or a reference to something unknown.

    ``kind`` names what ``key`` is in the message (``"key"`` of a configuration file, or
    ``"variable"`` for a column an estimator was asked to use).
    """

    def __init__(self, key, problem, *, hint=None, source="config.yaml", kind="key"):
        self.key = key
        self.problem = problem
        self.hint = hint
        self.source = source
        msg = f"{source}, {kind} '{key}': {problem}"
        if hint:
            msg += f"\n  hint: {hint}"
        super().__init__(msg)


def suggest(name, choices, n: int = 3) -> list[str]:
    """The closest ``choices`` to ``name`` (``difflib``, ignoring case), best first."""
    import difflib

    by_lower: dict[str, str] = {}
    for c in choices:
        by_lower.setdefault(str(c).lower(), str(c))
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=n, cutoff=0.6)
    return [by_lower[c] for c in close]


class UnknownVariableError(ConfigError):
    """A variable name given to an estimator that is not a column of the data.

    Parameters
    ----------
    name : str
        The name as given.
    role : str
        Its role in the call ("outcome", "regressor", "cluster", …).
    columns : iterable of str
        The columns of the data, for the did-you-mean suggestion (``difflib``).
    source : str
        The estimator (``"twfe"``, ``"iv_twfe"``, ``"psm"``, …).
    """

    def __init__(self, name, role, columns, *, source):
        cols = [str(c) for c in columns]
        close = suggest(name, cols)
        if close:
            hint = "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        else:
            shown = ", ".join(cols[:12]) + (", …" if len(cols) > 12 else "")
            hint = f"the data has the columns: {shown}"
        self.role = role
        super().__init__(
            name, f"{role} '{name}' is not in the data", hint=hint, source=source, kind="variable"
        )


class _ProblemError(ProjectError, ValueError):
    """A problem found by a computation on the user's data or specification.

    ``ValueError`` is a second base so that code written against the earlier plain
    ``ValueError`` types keeps working. The message is the problem, then the hint.

    Parameters
    ----------
    problem : str
        What is wrong, in one sentence (names the variable concerned).
    hint : str, optional
        How to fix it.
    variable : str, optional
        The variable concerned, for programs that catch the error.
    """

    def __init__(self, problem, *, hint=None, variable=None):
        self.problem = str(problem)
        self.hint = hint
        self.variable = variable
        msg = self.problem + (f"\n  hint: {hint}" if hint else "")
        super().__init__(msg)


class EstimationError(_ProblemError):
    """The model cannot be estimated on these data (a regressor absorbed by the fixed effects,
    fewer than two clusters, no observations, …)."""


class MatchingError(_ProblemError):
    """The matching cannot be done on these data (no controls, no treated on support, a
    covariate that predicts treatment perfectly, …)."""


class FormulaError(_ProblemError):
    """A formula outside the grammar of :mod:`nqp_resilience.indices.formula`."""
