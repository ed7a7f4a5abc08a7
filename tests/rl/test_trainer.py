"""The trainer's bookkeeping around a run (no Ray here): which checkpoint a resume takes, what a run folder may hold,
when a cached warm start is reused."""

import json

import pytest

from rl.config import ConfigError, load_config
from rl.trainer import CHECKPOINT_FILES, GRPOTrainer, latest_checkpoint, prepare_output_dir


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
