"""archgen's version, in a module of its own: emitted files' headers and the CLI's --version read it
without importing the package's public API (and what that reaches)."""

__version__ = "0.1.0"
