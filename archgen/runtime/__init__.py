"""The framework side: what runs a built model. Build checks against the IR (``checks``), numeric
comparison between backends (``compare``), weights moved between live models (``transfer``) and
checkpoint files (``port``, ``checkpoint_files``), export (``export``) and benchmarks (``bench``).
Each module reaches its framework through the backend registry, lazily."""
