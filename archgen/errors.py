"""The one exception type that user-facing mistakes are reported with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, located as precisely as the input allows."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return printable(f"{where}:{field} {self.message}")


def printable(text: str) -> str:
    """One line with no control characters: a file name or key from the input can hold a newline or
    a terminal escape sequence, which must not forge or hide lines of the report."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class SpecError(ValueError):
    """A spec (or an override of it) is invalid.

    Carries every problem found, each with file, line, column and field; the
    attributes ``file``, ``line``, ``field`` and ``message`` name the first.
    """

    def __init__(self, problems: list[Problem] | Problem) -> None:
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def file(self) -> str:
        return self.problems[0].file

    @property
    def line(self) -> int | None:
        return self.problems[0].line

    @property
    def field(self) -> str:
        return self.problems[0].field

    @property
    def message(self) -> str:
        return self.problems[0].message


class CheckpointError(SpecError):
    """A weights file cannot be read or does not fit the spec (``archgen port``; exit 2 in the CLI).

    ``file`` is the weights file, ``field`` the first mismatching tensor (or IR layer), ``line`` None.
    """


def dotted(path: tuple[str | int, ...]) -> str:
    """Render a field path the way users write it in ``--set``: ``stages.2.depth``."""
    return ".".join(str(p) for p in path)
