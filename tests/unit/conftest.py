import os

import pytest


@pytest.fixture(autouse=True)
def no_clang_llm_settings(monkeypatch):
    """Unit tests see the defaults, whatever the developer's shell has set."""
    for var in [v for v in os.environ if v.startswith("CLANG_LLM_")]:
        monkeypatch.delenv(var)
