"""The reward kinds: hf-classifier (one logit, ArmoRM-style custom code), function, and the
demonstration rewards relevance and sentiment."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from sweetspot.errors import InputError
from sweetspot.scoring.backends import available_scorers, get_scorer, identify_scorer

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]
RESPONSES = [
    "Paris.",
    "Paris is the capital of France.",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000.",
    "x",
]


def test_registry_lists_every_kind():
    assert available_scorers() == ["function", "hf-classifier", "relevance", "sentiment"]
    with pytest.raises(InputError, match="unknown reward kind 'nope'"):
        get_scorer("nope")


# --- hf-classifier ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rm(tiny_rm_dir):
    return get_scorer("hf-classifier", model=str(tiny_rm_dir), max_length=256)


def test_one_logit_reward_model_matches_a_direct_forward(rm, tiny_rm_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_rm_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_rm_dir).eval()
    conv = [*PROMPT, {"role": "assistant", "content": RESPONSES[1]}]
    ids = tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_tensors="pt")
    with torch.no_grad():
        want = model(**ids).logits[0, 0].item()
    got = rm.score([PROMPT], [RESPONSES[1]])
    assert got.dtype == np.float64 and got.shape == (1,)
    assert got[0] == pytest.approx(want, abs=1e-5)
    assert rm.model_id == str(tiny_rm_dir)
    assert rm.revision.startswith("local-") and rm.revision.endswith("max_length=256")
    assert rm.dtype == torch.float32  # auto: float32 on CPU


def test_scores_do_not_depend_on_the_batch(rm):
    alone = np.array([rm.score([PROMPT], [r])[0] for r in RESPONSES])
    together = rm.score([PROMPT] * len(RESPONSES), RESPONSES)
    np.testing.assert_allclose(together, alone, atol=1e-4, rtol=0)
    small = get_scorer("hf-classifier", model=rm.model_id, max_length=256, max_tokens_per_batch=60)
    np.testing.assert_allclose(small.score([PROMPT] * len(RESPONSES), RESPONSES), alone, atol=1e-4)
    assert small.stats["batches"] > 1
    assert len(set(np.round(alone, 6))) == len(RESPONSES)  # a real spread, not a constant


def test_inputs_longer_than_max_length_are_cut_and_counted(tiny_rm_dir):
    full = get_scorer("hf-classifier", model=str(tiny_rm_dir), max_length=4096)
    lengths = [len(full.encode(PROMPT, r)) for r in RESPONSES]
    limit = sorted(lengths)[2]
    cut = get_scorer("hf-classifier", model=str(tiny_rm_dir), max_length=limit)
    cut.score([PROMPT] * len(RESPONSES), RESPONSES)
    assert cut.stats["truncated"] == sum(n > limit for n in lengths) == 2
    assert all(len(cut.encode(PROMPT, r)) <= limit for r in RESPONSES)
    # the cut input scores like its first `limit` tokens (the tokenizer's truncation side)
    longest = RESPONSES[int(np.argmax(lengths))]
    assert cut.encode(PROMPT, longest) == full.encode(PROMPT, longest)[:limit]


def test_doubled_bos_is_removed(tiny_rm_dir, tmp_path):
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    # A Llama-3-style tokenizer: it adds BOS itself, and the chat template starts with it too.
    folder = tmp_path / "rm-bos"
    shutil.copytree(tiny_rm_dir, folder)
    tok = AutoTokenizer.from_pretrained(folder)
    bos = tok.bos_token
    tok._tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.bos_token_id)]
    )
    tok.save_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder)("hi")["input_ids"][0] == tok.bos_token_id

    plain = get_scorer("hf-classifier", model=str(tiny_rm_dir))
    doubled = get_scorer("hf-classifier", model=str(folder))
    ids = doubled.encode(PROMPT, RESPONSES[0])
    assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id
    assert ids == plain.encode(PROMPT, RESPONSES[0])
    assert doubled.stats["doubled_bos_removed"] == 1 and plain.stats["doubled_bos_removed"] == 0
    np.testing.assert_allclose(
        doubled.score([PROMPT] * 2, RESPONSES[:2]),
        plain.score([PROMPT] * 2, RESPONSES[:2]),
        atol=1e-6,
    )


def test_missing_model_and_missing_option_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="needs --reward-model"):
        identify_scorer("hf-classifier", model=None)
    with pytest.raises(InputError, match="no such reward model folder"):
        identify_scorer("hf-classifier", model=str(tmp_path / "nope" / "rm"))


ARMO_MODELING = '''
"""A tiny ArmoRM look-alike: custom code, output with .score, reads the token before the first
pad (so it needs right padding)."""
from dataclasses import dataclass

import torch
from transformers import LlamaModel, LlamaPreTrainedModel
from transformers.utils import ModelOutput


@dataclass
class TinyArmoOutput(ModelOutput):
    rewards: torch.FloatTensor | None = None
    score: torch.FloatTensor | None = None


class TinyArmoRewardModel(LlamaPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        self.regression_layer = torch.nn.Linear(config.hidden_size, 3, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        ends = torch.eq(input_ids, self.config.pad_token_id).int().argmax(-1) - 1
        ends = ends % input_ids.shape[-1]
        rewards = self.regression_layer(hidden[torch.arange(input_ids.shape[0]), ends])
        score = rewards @ torch.tensor([0.5, 0.3, 0.2], dtype=rewards.dtype)
        return TinyArmoOutput(rewards=rewards, score=score.unsqueeze(-1) * 10.0)
'''


@pytest.fixture(scope="module")
def armo_dir(tmp_path_factory):
    """A custom-code reward model folder: Llama config + auto_map + its own modeling file."""
    from transformers import AutoTokenizer, LlamaConfig

    from sweetspot.tiny import build_tokenizer

    src = tmp_path_factory.mktemp("armo-src")
    (src / "modeling_tinyarmo.py").write_text(textwrap.dedent(ARMO_MODELING))
    spec = importlib.util.spec_from_file_location("modeling_tinyarmo", src / "modeling_tinyarmo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["modeling_tinyarmo"] = module
    spec.loader.exec_module(module)
    tok = build_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(3)
    model = module.TinyArmoRewardModel(cfg)
    module.TinyArmoRewardModel.register_for_auto_class("AutoModelForSequenceClassification")
    folder = tmp_path_factory.mktemp("armo")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del sys.modules["modeling_tinyarmo"]
    assert AutoTokenizer.from_pretrained(folder).chat_template
    return folder


def test_armorm_style_custom_code_needs_trust_remote_code(armo_dir):
    import json

    auto_map = json.loads((armo_dir / "config.json").read_text())["auto_map"]
    assert "AutoModelForSequenceClassification" in auto_map
    assert (armo_dir / "modeling_tinyarmo.py").is_file()
    with pytest.raises(InputError, match="pass --trust-remote-code"):
        get_scorer("hf-classifier", model=str(armo_dir))


def test_armorm_style_output_score_is_the_reward(armo_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    scorer = get_scorer("hf-classifier", model=str(armo_dir), trust_remote_code=True)
    assert type(scorer.model).__name__ == "TinyArmoRewardModel"
    tok = AutoTokenizer.from_pretrained(armo_dir)
    model = AutoModelForSequenceClassification.from_pretrained(armo_dir, trust_remote_code=True)
    want = []
    for r in RESPONSES:  # ArmoRM's model-card usage: one conversation at a time
        conv = [*PROMPT, {"role": "assistant", "content": r}]
        ids = tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_tensors="pt")
        with torch.no_grad():
            want.append(model(input_ids=ids["input_ids"]).score[0, 0].item())
    got = scorer.score([PROMPT] * len(RESPONSES), RESPONSES)  # batched, right-padded
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


# --- function --------------------------------------------------------------------------------

REWARD_FILE = """
def length(prompts, responses):
    return [float(len(r)) for r in responses]

def is_paris(prompts, responses):
    return ["paris" in r.lower() for r in responses]

def raises(prompts, responses):
    raise ZeroDivisionError("no")

def short(prompts, responses):
    return [1.0]

def words(prompts, responses):
    return ["a"] * len(responses)
"""


@pytest.fixture
def reward_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(REWARD_FILE)
    return path


def test_function_from_a_file_and_from_a_module(reward_file, monkeypatch):
    s = get_scorer("function", function=f"{reward_file}:length")
    assert s.score([PROMPT] * 2, ["ab", "abcd"]).tolist() == [2.0, 4.0]
    assert s.model_id == f"function:{reward_file}:length" and s.revision.startswith("src-")
    monkeypatch.syspath_prepend(str(reward_file.parent))
    m = get_scorer("function", function="my_rewards:is_paris", batch_size=1)
    assert m.score([PROMPT] * 3, ["Paris", "Rome", "paris!"]).tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("raises", "raised ZeroDivisionError: no"),
        ("short", "returned 1 values for 2 responses"),
        ("words", "rewards must be numbers"),
        ("missing", "has no callable 'missing'"),
    ],
)
def test_function_errors_name_the_function(reward_file, name, message):
    with pytest.raises(InputError, match=message) as e:
        get_scorer("function", function=f"{reward_file}:{name}").score([PROMPT] * 2, ["a", "b"])
    assert name in str(e.value)


def test_function_spec_errors():
    with pytest.raises(InputError, match="module:function"):
        get_scorer("function", function="no_colon")
    with pytest.raises(InputError, match="cannot import module"):
        get_scorer("function", function="surely_not_a_module_xyz:f")
    with pytest.raises(InputError, match="needs --function"):
        identify_scorer("function")


# --- demonstration rewards ---------------------------------------------------------------------


def test_sentiment_is_vader_compound():
    s = get_scorer("sentiment")
    texts = ["I love this, it is wonderful!", "The table has four legs.", "Awful."]
    assert s.score([PROMPT] * 3, texts).tolist() == [0.8478, 0.0, -0.4588]
    assert s.model_id == "vader" and s.revision.startswith("vaderSentiment-")


def test_relevance_separates_on_topic_from_off_topic():
    s = get_scorer("relevance")
    out = s.score(
        [PROMPT] * 2,
        ["The capital of France is Paris.", "Bananas are rich in potassium and taste sweet."],
    )
    assert out[0] > 0.6 and out[1] < 0.2
    assert s.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    # batch independence holds here too
    alone = s.score([PROMPT], ["Bananas are rich in potassium and taste sweet."])[0]
    assert alone == pytest.approx(out[1], abs=1e-5)


def test_relevance_model_comes_from_the_wheel_without_sentence_transformers():
    from sweetspot.scoring.backends.relevance import minilm_path

    path = minilm_path()
    assert (Path(path) / "model.safetensors").is_file()
    assert "sentence_transformers" not in sys.modules
