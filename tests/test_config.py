"""RunConfig: validation, error messages naming the key path and line, the shipped configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sweetspot.config import RunConfig, builtin_prompts_path, dump_config, load_config
from sweetspot.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = "policy:\n  model: some/model\n"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "run.yaml"
    p.write_text(text)
    return p


def test_minimal_config_has_documented_defaults(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.rounds == 1
    assert cfg.reference == "initial"
    assert cfg.prompts.source == "builtin"
    assert cfg.prompts.split is None and cfg.prompts.eval.split == "eval"  # builtin: train rows
    assert cfg.pairs.train_on == "sweet-spot"
    assert cfg.evaluation is None
    assert cfg.sampling.sample_config("m").model == "m"


def test_unknown_key_names_path_and_line(tmp_path):
    p = write(tmp_path, MINIMAL + "sampling:\n  n: 4\n  temprature: 0.7\n")
    with pytest.raises(InputError) as e:
        load_config(p)
    assert e.value.field == "sampling.temprature"
    assert e.value.row == 5
    assert "unknown key" in str(e.value)


def test_wrong_type_names_path_and_value(tmp_path):
    p = write(tmp_path, MINIMAL + "rounds: two\n")
    with pytest.raises(InputError) as e:
        load_config(p)
    assert e.value.field == "rounds"
    assert e.value.row == 3
    assert "'two'" in str(e.value)


def test_nested_stage_errors_name_the_stage_field(tmp_path):
    p = write(tmp_path, MINIMAL + "training:\n  preset: cpu-small\n  beta: -1\n")
    with pytest.raises(InputError) as e:
        load_config(p)
    assert e.value.field == "training.beta"
    p = write(tmp_path, MINIMAL + "pairs:\n  strategies: [conventional]\n  train_on: sweet-spot\n")
    with pytest.raises(InputError) as e:
        load_config(p)
    assert e.value.field == "pairs"
    assert "train_on" in str(e.value)


def test_sampling_model_is_set_by_the_loop(tmp_path):
    p = write(tmp_path, MINIMAL + "sampling:\n  model: other\n")
    with pytest.raises(InputError, match="policy.model"):
        load_config(p)


def test_missing_policy_and_bad_yaml(tmp_path):
    with pytest.raises(InputError) as e:
        load_config(write(tmp_path, "rounds: 1\n"))
    assert e.value.field == "policy"
    with pytest.raises(InputError) as e:
        load_config(write(tmp_path, MINIMAL + "rounds: [1\n"))
    assert e.value.row == 4
    assert "not valid YAML" in str(e.value)
    with pytest.raises(InputError, match="empty"):
        load_config(write(tmp_path, ""))
    with pytest.raises(InputError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_evaluation_names_the_training_reward(tmp_path):
    text = MINIMAL + "scoring:\n  reward: relevance\nevaluation:\n  judge: relevance\n"
    assert load_config(write(tmp_path, text)).evaluation.train_reward == "relevance"
    text = MINIMAL + "scoring:\n  reward_model: org/rm\nevaluation:\n  judge: hf-classifier\n"
    assert load_config(write(tmp_path, text)).evaluation.train_reward == "org/rm"


def test_training_preset_with_override(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + "training:\n  preset: cpu-small\n  max_steps: 3\n"))
    assert cfg.training.max_steps == 3
    assert cfg.training.lora is not None and cfg.training.lora.r == 16  # from the preset


def test_train_on_spec_maps_to_file_stem(tmp_path):
    text = MINIMAL + "pairs:\n  strategies: [max:min, sweet-spot]\n  train_on: max:min\n"
    cfg = load_config(write(tmp_path, text))
    from sweetspot.pairs import parse_strategies

    assert cfg.pairs.train_on == parse_strategies(["max:min"])[0].name
    assert "train_on" not in cfg.pairs.pair_config().model_dump()


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p.jsonl").write_text('{"prompt": "hi"}\n')
    (tmp_path / "model").mkdir()
    cfg = load_config(
        write(tmp_path, "policy:\n  model: model\nprompts:\n  source: data/p.jsonl\n")
    )
    assert cfg.policy.model == str((tmp_path / "model").resolve())
    assert cfg.prompts.source == str((tmp_path / "data" / "p.jsonl").resolve())


def test_dumped_config_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + "training:\n  preset: cpu-small\n"))
    again = load_config(write(tmp_path, dump_config(cfg)))
    assert again == cfg


def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    else:
        yield path, node


@pytest.mark.parametrize("name", ["paper-llama3-8b-instruct.yaml", "cpu-small.yaml"])
def test_shipped_examples_validate(name):
    """Every value the file sets is the value the loaded config holds (the YAML read here with
    plain PyYAML), and the dumped config loads back to the same."""
    import yaml

    path = ROOT / "examples" / name
    cfg = load_config(path)
    held = cfg.model_dump(mode="json")
    settings = list(_leaves(yaml.safe_load(path.read_text())))
    assert len(settings) > 20
    for keys, value in settings:
        got = held
        for k in keys:
            got = got[k]
        assert got == value, (".".join(keys), value, got)
    assert RunConfig.model_validate(yaml.safe_load(dump_config(cfg))) == cfg


def test_paper_example_matches_the_paper():
    cfg = load_config(ROOT / "examples" / "paper-llama3-8b-instruct.yaml")
    assert cfg.policy.model == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert cfg.prompts.source == "HuggingFaceH4/ultrafeedback_binarized"
    assert cfg.prompts.split == "train_prefs"
    assert cfg.sampling.n == 200 and cfg.sampling.backend == "vllm"
    assert cfg.sampling.temperature == 0.8 and cfg.sampling.max_new_tokens == 4096
    assert cfg.scoring.reward_model == "RLHFlow/ArmoRM-Llama3-8B-v0.1"
    assert cfg.scoring.trust_remote_code
    assert cfg.pairs.train_on == "sweet-spot"
    t = cfg.training
    assert (t.beta, t.learning_rate, t.lr_scheduler_type, t.warmup_ratio) == (
        0.01,
        3e-7,
        "cosine",
        0.01,
    )
    assert t.max_length == 2048 and t.precision == "bf16"


def test_shipped_demo_config_validates():
    from sweetspot.sweep import load_sweep_config

    cfg = load_sweep_config(Path(__file__).resolve().parents[1] / "src/sweetspot/data/demo.yaml")
    assert cfg.sweep.n == [8, 16, 32]
    assert set(cfg.sweep.strategies) == {"sweet-spot", "conventional"}
    assert {(t.n, t.strategy) for t in cfg.sweep.train} == {
        (32, "conventional"),
        (32, "sweet-spot"),
    }
    assert cfg.scoring.reward == "relevance"
    assert cfg.sampling.backend == "ct2"
    assert cfg.training.preset == "cpu-small"


def test_shipped_prompt_set():
    rows = [json.loads(line) for line in builtin_prompts_path().read_text().splitlines()]
    assert len(rows) >= 200
    assert {r["split"] for r in rows} == {"train", "eval"}
    assert sum(r["split"] == "eval" for r in rows) == 46
    assert len({r["prompt"] for r in rows}) == len(rows)
    assert len({r["category"] for r in rows}) >= 9


def test_cli_run_with_bad_config_exits_2_naming_the_key(tmp_path, monkeypatch, capsys):
    from sweetspot.cli import main

    p = write(tmp_path, MINIMAL + "scoring:\n  rewrd: x\n")
    monkeypatch.setattr("sys.argv", ["sweetspot", "run", str(p), "--output", str(tmp_path / "r")])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "scoring.rewrd" in err and "unknown key" in err
    assert not (tmp_path / "r").exists()  # nothing created for a config that does not load
