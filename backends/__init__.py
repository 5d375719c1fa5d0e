"""archgen backends: one package per framework, each exposing ``BACKEND``."""
