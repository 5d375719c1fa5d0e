"""The one exception type that user-facing mistakes are reported with."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
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
    attributes ``file``, ``line``, ``column``, ``field`` and ``message`` name the first.
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
    def column(self) -> int | None:
        return self.problems[0].column

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


class OptionError(ValueError):
    """A command-line option or argument has a value the command cannot take (exit 2): ``--device gpu``."""


class MissingFramework(ImportError):
    """What was asked needs a framework that is not installed (exit 2); the message says what to install."""


class RunError(RuntimeError):
    """The machine could not do what was asked (exit 3): it ran out of memory, or has no such device."""


# Framework exception classes that mean an allocation failed (torch, TensorFlow, JAX), by name so
# that the core imports no framework to recognise them.
_MEMORY_ERRORS = {"OutOfMemoryError", "ResourceExhaustedError", "XlaRuntimeError"}
_MEMORY_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "resource_exhausted")


def out_of_memory(exc: BaseException) -> bool:
    """Whether a framework's exception says that memory ran out."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    named = any(cls.__name__ in _MEMORY_ERRORS for cls in type(exc).__mro__)
    return (named or isinstance(exc, RuntimeError)) and any(w in text for w in _MEMORY_WORDS)


def memory_message(what: str, exc: BaseException) -> str:
    """One line for an allocation that failed: what was being done, the framework's reason in short, what to try."""
    reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    reason = re.sub(r"^\[enforce fail[^\]]*\]\s*(err == 0\.\s*)?", "", reason)  # torch's C++ prefix
    if len(reason) > 160:
        reason = reason[:157] + "..."
    return f"out of memory {what} ({reason}); free memory, use a smaller --input-size or network, or another --device"


@contextlib.contextmanager
def memory_guard(what: str) -> Iterator[None]:
    """A failed allocation inside becomes a one-line RunError saying what was being done."""
    try:
        yield
    except RunError:  # an inner guard already said what ran out (no second wrapping)
        raise
    except Exception as exc:
        if out_of_memory(exc):
            raise RunError(memory_message(what, exc)) from None
        raise
