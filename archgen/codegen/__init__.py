"""Code generation: the IR rendered through each backend's jinja2 templates into a standalone
source file (``emit``), the same source that a live build executes in memory."""
