"""The trainer's bookkeeping around a run (no Ray here): which checkpoint a resume takes, what a run folder may hold,
when a cached warm start is reused."""

import json
import shutil
from pathlib import Path

import pytest

import rl.trainer
from model import init_pretrained
from problems import load_problems
from rl.config import ConfigError, load_config
from rl.trainer import CHECKPOINT_FILES, GRPOTrainer, latest_checkpoint, prepare_output_dir

REPO_CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "tiny_arith.yaml"


def checkpoint(root, step, complete=True):
    folder = root / "checkpoints" / f"step_{step}"
    folder.mkdir(parents=True)
    for name in CHECKPOINT_FILES[: None if complete else 2]:
        (folder / name).write_text("x")
    return folder


def test_resume_takes_the_newest_complete_checkpoint_and_says_so(tmp_path):
    messages = []
    assert latest_checkpoint(tmp_path, messages.append) is None
    checkpoint(tmp_path, 10)
    good = checkpoint(tmp_path, 20)
    checkpoint(tmp_path, 30, complete=False)
    (tmp_path / "checkpoints" / ".tmp-step_40").mkdir()  # an interrupted write stays hidden
    assert latest_checkpoint(tmp_path, messages.append) == good
    assert messages == [f"checkpoint {tmp_path / 'checkpoints' / 'step_30'} is incomplete (no learner_state.pt, "
                        "trainer_state.json): taking the one before it"]


def test_a_folder_holding_a_run_is_continued_replaced_or_refused(tmp_path):
    prepare_output_dir(tmp_path / "new", resume=False, overwrite=False)  # an empty or missing folder is fine
    run = tmp_path / "run"
    checkpoint(run, 5)
    (run / "metrics.jsonl").write_text("{}\n")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already holds a run"):
        prepare_output_dir(run, resume=False, overwrite=False)
    prepare_output_dir(run, resume=True, overwrite=False)
    assert (run / "metrics.jsonl").exists()
    prepare_output_dir(run, resume=False, overwrite=True)
    assert not (run / "metrics.jsonl").exists() and not (run / "checkpoints").exists()
    assert (run / "notes.txt").read_text() == "mine"  # only what a run writes is deleted


def test_a_cached_warm_start_is_reused_only_for_the_same_settings(tmp_path):
    trainer = GRPOTrainer(load_config(None, [f"trainer.output_dir={tmp_path}"]), log=lambda *_: None)
    built = []

    def build(out):
        out.mkdir()
        (out / "weights").write_text(str(len(built)))
        built.append(out)

    folder = tmp_path / "sft"
    assert trainer.cached(folder, {"lr": 1}, build) == folder and len(built) == 1
    assert trainer.cached(folder, {"lr": 1}, build) == folder and len(built) == 1  # same settings: reused
    assert trainer.cached(folder, {"lr": 2}, build) == folder and len(built) == 2  # changed: built again
    assert (folder / "weights").read_text() == "1" and json.loads((folder / "warm_start.json").read_text()) == {"lr": 2}
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_run_folder_copied_elsewhere_keeps_its_warm_start(tmp_path, monkeypatch):
    """The warm start is cached under what made it, never a path: a copy of the run folder, or a starting policy
    moved to another folder, reuses it; a starting policy with other weights builds a new one. (The fine-tuning
    itself is replaced by a copy of the starting policy: the cache is what is tested.)"""
    built = []

    def counted_sft(checkpoint, out, *_, **__):
        built.append(Path(checkpoint))
        shutil.copytree(checkpoint, out)

    monkeypatch.setattr(rl.trainer, "sft_from_checkpoint", counted_sft)

    def warm_start(run, *overrides):
        config = load_config(REPO_CONFIG, ["sft.steps=2", "sft.batch_size=4", "data.num_train=16",
                                           f"trainer.output_dir={run}", *overrides])
        trainer = GRPOTrainer(config, log=lambda *_: None)
        trainer.train_problems, _ = load_problems(config.data)
        return trainer.prepare_policy()

    assert warm_start(tmp_path / "a") == tmp_path / "a" / "sft" and len(built) == 1
    shutil.copytree(tmp_path / "a", tmp_path / "copied" / "a")
    assert warm_start(tmp_path / "copied" / "a") == tmp_path / "copied" / "a" / "sft" and len(built) == 1

    init_pretrained("tiny", tmp_path / "policy", seed=1)
    warm_start(tmp_path / "b", f"model.path={tmp_path / 'policy'}")
    assert len(built) == 2
    (tmp_path / "policy").rename(tmp_path / "moved")
    warm_start(tmp_path / "b", f"model.path={tmp_path / 'moved'}")
    assert len(built) == 2
    init_pretrained("tiny", tmp_path / "moved", seed=2)
    warm_start(tmp_path / "b", f"model.path={tmp_path / 'moved'}")
    assert len(built) == 3


def test_a_reward_whose_column_the_dataset_lacks_stops_the_run_at_start_up(tmp_path, monkeypatch):
    """code_execution reads `tests`, which no math dataset has: every sample would score "not applicable" and every
    group would be dropped, silently. The run stops before SFT or any actor, naming the function, the column and
    the dataset's columns."""
    import rl.trainer

    monkeypatch.setattr(rl.trainer.GRPOTrainer, "prepare_policy", lambda self: pytest.fail("SFT started"))
    config = load_config(REPO_CONFIG, [f"trainer.output_dir={tmp_path / 'run'}", "data.num_train=50",
                                       "reward.functions=[math_accuracy, code_execution]", "reward.weights=[1, 1]"])
    with pytest.raises(ConfigError, match=r"reward.functions\[1\]: code_execution needs the dataset column 'tests', "
                                          r"which data.train 'synthetic' does not have \(its columns: id, question, "
                                          r"answer, solution, source, level\)"):
        GRPOTrainer(config).setup()


def test_steps_with_every_group_dropped_are_reported_loudly():
    messages = []
    trainer = GRPOTrainer(load_config(REPO_CONFIG), log=messages.append)
    for step, kept in enumerate([0.5, 0.0, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], start=1):
        trainer.step = step
        trainer.warn_if_nothing_learned({"groups/kept_frac": kept, "reward/mean": 0.0})
    assert len(messages) == 3
    assert messages[0].startswith("WARNING: steps 2-4: every group was dropped as zero-variance")
    assert messages[1].startswith("WARNING: steps 7-9:") and messages[2].startswith("WARNING: steps 7-12:")
