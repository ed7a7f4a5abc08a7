import json

from model.build_tokenizer import ASSISTANT, BOS, EOS, PAD, THINK, build
from model.tokenizer import TOKENIZER_DIR, load_tokenizer


def test_special_tokens_have_the_ids_the_model_expects():
    tokenizer = load_tokenizer()
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (0, 1, 2)
    assert tokenizer.convert_tokens_to_ids([BOS, EOS, PAD]) == [0, 1, 2]
    assert len(tokenizer) == 2048


def test_digits_are_split_one_by_one_and_text_round_trips():
    tokenizer = load_tokenizer()
    text = "Natalia sold 48/2 = 24 clips in May, 1234567 in all."
    ids = tokenizer(text, add_special_tokens=False).input_ids
    pieces = [tokenizer.decode([i]) for i in ids]
    assert [p for p in pieces if p.strip().isdigit()] == list("482241234567")
    assert tokenizer.decode(ids) == text


def test_chat_template_is_r1_style():
    tokenizer = load_tokenizer()
    text = tokenizer.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text == f"{BOS}<｜User｜>1+1?{ASSISTANT}"
    ids = tokenizer(f"{THINK}x", add_special_tokens=False).input_ids
    assert ids[0] == tokenizer.convert_tokens_to_ids(THINK)


def test_build_script_reproduces_the_shipped_files(tmp_path):
    build(2048, tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert json.loads((tmp_path / name).read_text()) == json.loads((TOKENIZER_DIR / name).read_text()), name


def test_decode_completion_keeps_reasoning_tags_and_drops_control_tokens():
    """Training rewards, evaluation and search all grade this text (rl.trainer, rl.evaluate): a completion cannot
    earn a reward that evaluation would not give."""
    from model import decode_completion, load_tokenizer

    tokenizer = load_tokenizer()
    text = "<think>\n7 + 5 = 12\n</think>\nThe answer is \\boxed{12}."
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert decode_completion(tokenizer, ids + [tokenizer.eos_token_id, tokenizer.pad_token_id]) == text
    assert decode_completion(tokenizer, [tokenizer.bos_token_id] + ids) == text


def test_reasoning_tags_survive_decoding_that_skips_special_tokens():
    """TRL's GRPOTrainer decodes completions with skip_special_tokens=True: marked special, <think> would vanish
    there and a format reward would score every completion 0 (measured: TRL's format reward mean was 0 on the
    demo's SFT policy, ours 0.96); so the tags are added tokens that are not special. Checkpoints made before
    (tags marked special) still decode them through model.decode_completion."""
    from model import decode_completion

    tokenizer = load_tokenizer()
    text = "<think>\n7 + 5 = 12\n</think>\nThe answer is \\boxed{12}."
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert ids[0] == tokenizer.convert_tokens_to_ids(THINK)  # still one whole token
    assert tokenizer.decode(ids + [tokenizer.eos_token_id], skip_special_tokens=True) == text
    old = json.loads((TOKENIZER_DIR / "tokenizer.json").read_text())
    for token in old["added_tokens"]:
        token["special"] = True
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    legacy = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(old)),
                                     additional_special_tokens=[THINK, "</think>"], eos_token=EOS)
    assert decode_completion(legacy, ids + [legacy.eos_token_id]) == text


def test_rl_decodes_completions_one_way_only():
    from pathlib import Path

    rl = Path(__file__).parents[2] / "rl"
    offenders = [str(path) for path in rl.glob("*.py") if ".decode(" in path.read_text()]
    assert not offenders, f"decode completions with model.decode_completion, not tokenizer.decode: {offenders}"
