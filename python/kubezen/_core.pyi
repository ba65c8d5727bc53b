"""The native module of kubezen: the kubectl-zen core, driven from Python."""

from typing import Any, final

__all__ = [
    "CelError",
    "CelEvaluationError",
    "CelLimitError",
    "CelSyntaxError",
    "CelVariablesError",
    "Program",
    "Variables",
    "VersionInfo",
    "__version__",
    "cel_cache_stats",
    "cel_compile",
    "cel_eval",
    "version_info",
]

__version__: str
"""The version of the kubectl-zen core this module was built from."""

@final
class VersionInfo:
    """The version, git commit, target and toolchain this module was built from.

    The same facts as ``kubectl zen version -o json``. Instances are immutable, hashable and
    compare equal when every field does.
    """

    @property
    def version(self) -> str:
        """The semantic version shared by the core, the plugin and this package."""
    @property
    def git_commit(self) -> str:
        """The full git commit of the build, or ``"unknown"`` outside a git checkout."""
    @property
    def target(self) -> str:
        """The Rust target triple, such as ``"x86_64-unknown-linux-gnu"``."""
    @property
    def rustc(self) -> str:
        """The version of the Rust compiler that built the module."""
    @property
    def profile(self) -> str:
        """The cargo profile: ``"debug"`` or ``"release"``."""
    def to_dict(self) -> dict[str, str]:
        """The fields as a plain ``dict``, keyed by attribute name."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def version_info() -> VersionInfo:
    """The build information of the native module.

    >>> import kubezen
    >>> kubezen.version_info().version == kubezen.__version__
    True
    """

class CelError(ValueError):
    """A CEL expression could not be compiled or evaluated.

    ``position`` is ``(line, column)``, from 1, where known, else None; ``kind`` names the
    kind of an evaluation error (``"no_such_key"``, ``"undeclared_reference"``, ``"type"``,
    ``"division_by_zero"``, ``"overflow"``, ``"index_out_of_bounds"``, ``"function"``,
    ``"other"``), else None.
    """

    position: tuple[int, int] | None
    kind: str | None

class CelSyntaxError(CelError):
    """The expression is not valid CEL."""

class CelLimitError(CelError):
    """The expression is longer or deeper than the engine accepts."""

class CelEvaluationError(CelError):
    """Evaluation failed: a missing key, division by zero, overflow, a wrong type."""

class CelVariablesError(CelError):
    """The variables are not values CEL can take."""

@final
class Variables:
    """Variables converted once, to evaluate many programs or one program many times without
    converting the dict on every call."""

    def __new__(cls, vars: dict[str, Any]) -> Variables: ...
    def names(self) -> list[str]:
        """The variable names, sorted."""

@final
class Program:
    """A compiled CEL expression: evaluate it as often as needed."""

    @property
    def source(self) -> str:
        """The expression's text."""
    def eval(self, vars: dict[str, Any] | Variables | None = None) -> Any:
        """Evaluates the program against ``vars``: a dict of variable names to values, or a
        :class:`Variables` converted once for many evaluations.

        The GIL is released while the expression runs.
        """
    def references(self) -> list[str]:
        """The variables and field paths the expression reads, as dotted names, sorted."""
    def complexity(self) -> dict[str, int | str]:
        """How costly the expression is: ``nodes``, ``depth``, ``calls``, ``comprehensions``,
        ``comprehension_nesting``, ``score`` and ``cost_class``."""

def cel_compile(expr: str) -> Program:
    """Compiles ``expr`` through the shared cache of compiled programs."""

def cel_eval(expr: str, vars: dict[str, Any] | Variables | None = None) -> Any:
    """Compiles (through the cache) and evaluates ``expr`` against ``vars``."""

def cel_cache_stats() -> dict[str, int]:
    """The counters of the shared cache: ``hits``, ``misses``, ``evictions``, ``entries`` and
    ``capacity``."""
