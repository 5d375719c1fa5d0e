"""The PyTorch backend: live ``nn.Module`` models from the archgen IR."""

from .backend import BACKEND

__all__ = ["BACKEND"]
