"""The native module of kubezen: the kubectl-zen core, driven from Python."""

from typing import final

__all__ = ["VersionInfo", "__version__", "version_info"]

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
