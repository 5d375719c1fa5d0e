"""The namespace of live models' modules: ``archgen.live.<backend>_<spec>_<digest>``.

A live model is its backend's emitted source, rendered from the IR and executed in memory
(``load``). Its module is registered under this package, so that its classes have importable
names, and a pickled live model carries the source: unpickling it (``restore``, in any process
where archgen is installed) executes the source again under the same name before the model's
state is read, so ``torch.save(model)`` and ``copy.deepcopy(model)`` work as for any module.
"""

from __future__ import annotations

import linecache
import sys
import types
from typing import Any


def load(source: str, module_name: str) -> types.ModuleType:
    """Execute generated source as an importable module (tracebacks show its lines)."""
    if module_name in sys.modules:  # the same resolved spec: the same source, already executed
        return sys.modules[module_name]
    filename = f"<archgen {module_name}>"
    module = types.ModuleType(module_name)
    module.__file__ = filename
    module.__archgen_source__ = source  # type: ignore[attr-defined]
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    sys.modules[module_name] = module
    try:
        # dont_inherit: the source runs as its file would, not with this module's __future__ flags
        exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def loaded(module_name: str) -> types.ModuleType | None:
    """The live module of this name if this process has executed it already."""
    return sys.modules.get(module_name)


def name_for(backend: str, spec: str, digest: str) -> str:
    return f"{__name__}.{backend}_{spec}_{digest[:12]}"


def restore(module_name: str, source: str, class_name: str) -> Any:
    """An empty instance of a live class, its module executed first if this process lacks it."""
    cls = getattr(load(source, module_name), class_name)
    return cls.__new__(cls)


def _reduce(self: Any, protocol: int) -> tuple[Any, ...]:
    module = sys.modules[type(self).__module__]
    args = (module.__name__, module.__archgen_source__, type(self).__qualname__)
    return restore, args, self.__dict__.copy()


def picklable(cls: type) -> None:
    """Let instances of a live class pickle with their module's source (its submodules' classes are
    then found by name, that module being executed first)."""
    cls.__reduce_ex__ = _reduce  # type: ignore[assignment,method-assign]
