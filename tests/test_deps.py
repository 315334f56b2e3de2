"""Optional dependencies are checked once, with the extra to install named."""

import pytest

from sweetspot.deps import missing, require
from sweetspot.errors import ConfigError


def test_installed_modules_pass():
    assert missing("numpy", "pyarrow") == []
    require("numpy", what="the pair stage")


def test_a_missing_module_names_the_extra():
    with pytest.raises(
        ConfigError, match=r"the vllm backend needs no_such_mod_xyz.*sweetspot\[all\]"
    ):
        require("no_such_mod_xyz", what="the vllm backend")


def test_known_modules_map_to_their_extra(monkeypatch):
    import sweetspot.deps as deps

    monkeypatch.setattr(deps, "_installed", lambda m: m != "ctranslate2")
    with pytest.raises(ConfigError, match=r"pip install 'sweetspot\[ct2\]'"):
        require("ctranslate2", what="the ct2 backend")
