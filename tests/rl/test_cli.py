from pathlib import Path

from model import load_pretrained
from rl.cli import main


def test_model_init_writes_a_loadable_checkpoint(tmp_path, capsys):
    assert main(["model", "init", "--preset", "tiny", "--out", str(tmp_path / "p"), "--seed", "3"]) == 0
    assert "4.35M parameters" in capsys.readouterr().out
    policy = load_pretrained(tmp_path / "p")
    assert policy.args.vocab_size == 2048 and (tmp_path / "p" / "tokenizer.json").exists()


def test_bad_config_input_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    assert main(["train", str(Path(__file__).parents[2] / "experiments" / "tiny_arith.yaml"), "algorithm.epsilon_hgh=0.3"]) == 2
    assert "unknown field algorithm.epsilon_hgh" in capsys.readouterr().err
    assert main(["model", "init", "--preset", "huge", "--out", str(tmp_path / "q")]) == 2
    assert "unknown model preset 'huge'" in capsys.readouterr().err
