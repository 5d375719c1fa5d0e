"""The spec language: YAML text to a validated ``Spec``.

``yamlsource`` reads YAML with every value's file and line, ``catalog`` finds shipped specs by name,
``extends``, ``tweaks`` and ``overrides`` are the loader's steps before validation, ``spec`` holds
the pydantic models (the language itself), ``messages`` turns pydantic's errors into problems that
name file, line and field, and ``loader`` runs the steps in order. ``schema`` and ``specdoc`` write
the language out as JSON Schema and as its reference page. Nothing here imports the IR.
"""
