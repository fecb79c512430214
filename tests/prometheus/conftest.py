"""The integration suite's fixtures (binary, net, rig), for tests that run
mailedge next to another program (tests/integration/README.md)."""

import importlib.util
import os
import sys

_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration")
sys.path.insert(0, _DIR)
_spec = importlib.util.spec_from_file_location("integration_conftest",
                                               os.path.join(_DIR, "conftest.py"))
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)

binary, net, rig = _mod.binary, _mod.net, _mod.rig
pytest_runtest_makereport = _mod.pytest_runtest_makereport
