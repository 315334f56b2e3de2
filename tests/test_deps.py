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


@pytest.mark.parametrize(
    ("backend", "module", "extra"),
    [
        ("ct2", "ctranslate2", "ct2"),
        ("openai", "httpx", "openai"),
        ("vllm-server", "httpx", "openai"),
    ],
)
def test_a_sampling_backend_checks_what_it_declares_before_it_starts(
    monkeypatch, backend, module, extra
):
    import sweetspot.deps as deps
    from sweetspot.sampling.backends import get_generator

    monkeypatch.setattr(deps, "_installed", lambda m: m != module)
    with pytest.raises(ConfigError, match=rf"the {backend} backend needs {module}.*\[{extra}\]"):
        get_generator(backend, model="m")


@pytest.mark.parametrize(
    ("kind", "module", "extra"),
    [("sentiment", "vaderSentiment", "rewards"), ("hf-classifier", "transformers", "hf")],
)
def test_a_reward_checks_what_it_declares_before_it_loads(monkeypatch, kind, module, extra):
    import sweetspot.deps as deps
    from sweetspot.scoring.backends import get_scorer

    monkeypatch.setattr(deps, "_installed", lambda m: m != module)
    with pytest.raises(ConfigError, match=rf"the {kind} reward needs {module}.*\[{extra}\]"):
        get_scorer(kind, model="m")


def test_the_command_line_names_the_missing_extra(tmp_path):
    """Through the CLI in a child process: exit 2 with the extra named, no folder left."""
    import subprocess
    import sys

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Say hi."}\n')
    out = tmp_path / "run"
    code = (
        "import sweetspot.deps as d, sys; d._installed = lambda m: m != 'httpx'; "
        "from sweetspot.cli import main; sys.argv = ['sweetspot'] + sys.argv[1:]; main()"
    )
    args = ["sample", "--prompts", str(prompts), "--model", "m", "--backend", "openai"]
    res = subprocess.run(
        [sys.executable, "-c", code, *args, "--n", "2", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert "the openai backend needs httpx" in res.stderr
    assert "pip install 'sweetspot[openai]'" in res.stderr
    assert not out.exists()
