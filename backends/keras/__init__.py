"""The Keras 3 backend: channels-last models whose layer names are the IR names."""

from .backend import BACKEND

__all__ = ["BACKEND"]
