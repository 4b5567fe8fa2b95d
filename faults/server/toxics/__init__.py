"""Every toxic module in this package registers itself on import; see ``registry``."""

import importlib
import pkgutil

from faults.server.toxics.registry import REGISTRY, build, toxic

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "registry":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["REGISTRY", "build", "toxic"]
