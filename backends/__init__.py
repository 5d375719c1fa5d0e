"""archgen's backends, installed as ``archgen.backends`` (this folder, mapped by pyproject.toml).

One package per framework, each exposing ``EMITTER`` (templates and filters, no framework import)
and ``BACKEND`` (the live side, importing its framework when first used); the core reaches them only
through ``archgen.registry``.
"""
