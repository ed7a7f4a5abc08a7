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


def test_eval_takes_its_problems_from_the_dataset_table(monkeypatch):
    """`reasonrl eval --dataset` accepts every name of rl.data's table and scores that set's test split."""
    from types import SimpleNamespace

    import pytest

    import model
    import rl.evaluate
    import rl.rollout
    from rl.cli import build_parser, evaluate_checkpoint
    from rl.data import DATASET_NAMES, load_aime, split_synthetic

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in DATASET_NAMES:
        assert build_parser().parse_args(["eval", "--checkpoint", "c", "--dataset", name]).dataset == name
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--checkpoint", "c", "--dataset", "mnist"])
    # No engine here: the worker and the scoring loop are stand-ins, the problem list is the real one.
    monkeypatch.setattr(rl.rollout, "RolloutWorker", lambda *args, **kwargs: SimpleNamespace(generate=None))
    monkeypatch.setattr(model, "load_tokenizer", lambda path: None)
    monkeypatch.setattr(rl.evaluate, "evaluate", lambda generate, problems, tokenizer, **kwargs: problems)
    assert evaluate_checkpoint("unused", "aime24", limit=3) == load_aime(2024)[:3]
    assert evaluate_checkpoint("unused", "synthetic", seed=4) == split_synthetic(0, 200, 4)[1]
    with pytest.raises(ValueError, match="must be one of"):
        evaluate_checkpoint("unused", "mnist")
