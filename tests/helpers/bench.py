"""The bench scripts (bench/), loaded as modules for the tests that run them in-process.

The soak runs in the test's own process so that tests/conftest.py's secret guard sees every
output of the hundreds of commands it runs. bench/ is on sys.path only while a script loads
(its own `from _servers import ...` needs it), so no test module can import from bench/ by accident.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load(name: str) -> ModuleType:
    """bench/NAME.py as a module (loaded once per process)."""
    key = f"bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None, f"no bench/{name}.py"
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    sys.path.insert(0, str(BENCH))
    try:
        sys.modules[key] = module
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(key, None)
        raise
    finally:
        sys.path[:] = saved
    return module
