"""The trainer's bookkeeping around a run (no Ray here): which checkpoint a resume takes, what a run folder may hold,
when a cached warm start is reused."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import rl.trainer
from model import init_pretrained
from problems import load_problems
from rl.config import ConfigError, load_config, save_config
from rl.trainer import GRPOTrainer, RunInterrupted, checkpoint_damage, latest_checkpoint, prepare_output_dir

REPO_CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "tiny_arith.yaml"


def checkpoint(root, step, complete=True):
    """A checkpoint folder whose files have the formats a real one has (small: no policy in it)."""
    folder = root / "checkpoints" / f"step_{step}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    save_file({"weight": torch.zeros(64)}, str(folder / "model.safetensors"))
    if complete:
        torch.save({"version": step}, folder / "learner_state.pt")
        (folder / "trainer_state.json").write_text(json.dumps({"step": step, "history": []}))
    return folder


def cut(file, keep=0.5):
    """Truncate a file to a share of its bytes, as a full disk or a killed copy leaves it."""
    data = file.read_bytes()
    file.write_bytes(data[:int(len(data) * keep)])


def test_resume_takes_the_newest_complete_checkpoint_and_says_so(tmp_path):
    messages = []
    assert latest_checkpoint(tmp_path, messages.append) is None
    checkpoint(tmp_path, 10)
    good = checkpoint(tmp_path, 20)
    checkpoint(tmp_path, 30, complete=False)
    (tmp_path / "checkpoints" / ".tmp-step_40").mkdir()  # an interrupted write stays hidden
    assert latest_checkpoint(tmp_path, messages.append) == good
    assert messages == [(f"checkpoint {tmp_path / 'checkpoints' / 'step_30'} is damaged (no learner_state.pt, "
                         f"trainer_state.json): taking {good}, the newest whole checkpoint")]


@pytest.mark.parametrize("file, damage", [
    ("model.safetensors", "model.safetensors is truncated: its header promises"),
    ("learner_state.pt", "learner_state.pt is truncated"),
    ("trainer_state.json", "trainer_state.json is truncated or not a trainer state"),
    ("config.json", "config.json is missing or not JSON")])
def test_a_truncated_file_makes_a_checkpoint_damaged_and_resume_takes_the_one_before(tmp_path, file, damage):
    checkpoint(tmp_path, 1)
    assert checkpoint_damage(checkpoint(tmp_path, 2)) is None
    cut(tmp_path / "checkpoints" / "step_2" / file)
    assert damage in checkpoint_damage(tmp_path / "checkpoints" / "step_2")
    messages = []
    assert latest_checkpoint(tmp_path, messages.append) == tmp_path / "checkpoints" / "step_1"
    assert damage in messages[0] and "taking" in messages[0] and messages[0].endswith("the newest whole checkpoint")


def test_resume_names_a_damaged_checkpoint_before_the_warm_start_and_ray(tmp_path, monkeypatch):
    """The damaged last checkpoint is passed over (and the log names the one taken) before SFT or Ray start; when
    no checkpoint is whole, the run stops there with an error naming each one and what is wrong with it."""
    run = tmp_path / "run"
    checkpoint(run, 1)
    cut(checkpoint(run, 2) / "model.safetensors")
    (run / "metrics.jsonl").write_text("")

    class WarmStart(Exception):
        pass

    def warm_start(trainer):
        raise WarmStart

    monkeypatch.setattr(GRPOTrainer, "prepare_policy", warm_start)
    monkeypatch.setattr(rl.trainer, "join_or_start", lambda *_, **__: pytest.fail("Ray started"))
    messages = []
    trainer = GRPOTrainer(load_config(REPO_CONFIG, [f"trainer.output_dir={run}", "trainer.resume=true",
                                                    "data.num_train=50"]), log=messages.append)
    with pytest.raises(WarmStart):
        trainer.setup()
    assert len(messages) == 1 and messages[0].startswith(
        f"checkpoint {run / 'checkpoints' / 'step_2'} is damaged (model.safetensors is truncated: its header promises")
    assert messages[0].endswith(f"taking {run / 'checkpoints' / 'step_1'}, the newest whole checkpoint")
    cut(run / "checkpoints" / "step_1" / "learner_state.pt")
    with pytest.raises(ConfigError, match=r"trainer.resume: no checkpoint in .*checkpoints is whole \(step_1: "
                                          r"learner_state.pt is truncated \(\d+ bytes\); step_2: model.safetensors "
                                          r"is truncated.*start afresh with trainer.overwrite=true"):
        trainer.setup()


def test_a_run_folder_config_resumes_the_run_whatever_flags_started_it(tmp_path):
    """config.yaml in the run folder is the job without this invocation's resume or overwrite: the command the
    Ctrl-C message gives (`reasonrl train <run>/config.yaml --resume`) loads it with --resume."""
    config = load_config(REPO_CONFIG, [f"trainer.output_dir={tmp_path}", "trainer.overwrite=true",
                                       "trainer.steps=7"])
    saved = save_config(GRPOTrainer(config).run_config(), tmp_path / "config.yaml")
    resumed = load_config(saved, ["trainer.resume=true"])
    expected = config.to_dict()
    expected["trainer"] |= {"resume": True, "overwrite": False}
    assert resumed.to_dict() == expected


def test_ctrl_c_removes_the_partial_checkpoint_and_says_where_the_run_stopped_and_how_to_resume(tmp_path,
                                                                                                  monkeypatch):
    run = tmp_path / "my run"
    trainer = GRPOTrainer(load_config(REPO_CONFIG, [f"trainer.output_dir={run}", "trainer.steps=20"]))
    save_config(trainer.run_config(), run / "config.yaml")
    checkpoint(run, 6)
    (run / "checkpoints" / ".tmp-step_8" / "half").mkdir(parents=True)  # Ctrl-C during a checkpoint's write
    (run / ".tmp-sft").mkdir()  # or during the warm start

    def stopped_at_step_7(self):
        self.step = 7
        raise KeyboardInterrupt

    monkeypatch.setattr(GRPOTrainer, "train_loop", stopped_at_step_7)
    with pytest.raises(RunInterrupted) as interrupt:
        trainer.fit()
    assert str(interrupt.value) == (f"run stopped after step 7 of 20; a resumed run continues from its checkpoint "
                                    f"{run / 'checkpoints' / 'step_6'}.\n"
                                    f"resume with: reasonrl train '{run / 'config.yaml'}' --resume")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml"]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_6"]
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(RunInterrupted, match="it has no checkpoint yet: a resumed run starts again at step 0"):
        trainer.fit()


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


@pytest.mark.parametrize("metrics, named", [({"loss": float("nan"), "grad_norm": 1.0}, "loss nan"),
                                            ({"loss": 0.5, "grad_norm": float("inf")}, "grad_norm inf")])
def test_a_non_finite_loss_or_gradient_norm_stops_the_run_naming_the_step(tmp_path, metrics, named):
    with pytest.raises(rl.trainer.RunDiverged, match=rf"^step 7: the learner's {named}: the run stops here"):
        rl.trainer.check_finite(metrics, 7, tmp_path)
    rl.trainer.check_finite({"loss": 0.5, "grad_norm": 3.0, "entropy": float("nan")}, 7, tmp_path)  # others pass


@pytest.mark.parametrize("field", ["sft.mtp_weight", "algorithm.mtp_weight"])
def test_an_mtp_weight_for_a_policy_without_mtp_modules_is_named_before_the_warm_start_and_ray(tmp_path, monkeypatch,
                                                                                                field):
    monkeypatch.setattr(GRPOTrainer, "prepare_policy", lambda _: pytest.fail("the warm start began"))
    monkeypatch.setattr(rl.trainer, "join_or_start", lambda *_, **__: pytest.fail("Ray started"))
    trainer = GRPOTrainer(load_config(REPO_CONFIG, [f"trainer.output_dir={tmp_path / 'run'}", f"{field}=0.3",
                                                    "data.num_train=50"]), log=None)
    with pytest.raises(ConfigError, match=rf"{field}: is 0.3, but the policy preset:tiny has no MTP modules "
                                          r".*set model.num_nextn_predict_layers"):
        trainer.setup()
    init_pretrained("tiny", tmp_path / "plain")
    with pytest.raises(ConfigError, match=rf"{field}: .* has no MTP modules.*start from a checkpoint with MTP"):
        rl.trainer.check_mtp(load_config(REPO_CONFIG, [f"model.path={tmp_path / 'plain'}", f"{field}=0.3"]))
    init_pretrained("tiny", tmp_path / "mtp", num_nextn_predict_layers=1)
    rl.trainer.check_mtp(load_config(REPO_CONFIG, [f"model.path={tmp_path / 'mtp'}", f"{field}=0.3"]))
    rl.trainer.check_mtp(load_config(REPO_CONFIG, ["model.num_nextn_predict_layers=2", f"{field}=0.3"]))


def test_fp8_for_a_policy_other_than_our_deepseek_v3_class_is_named_before_the_warm_start(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}))
    with pytest.raises(ConfigError, match=r"trainer\.precision: fp8 runs our DeepSeek-V3 class only.*"
                                          r"Qwen2ForCausalLM: use bf16"):
        rl.trainer.check_fp8(load_config(REPO_CONFIG, [f"model.path={other}", "trainer.precision=fp8"]))
    rl.trainer.check_fp8(load_config(REPO_CONFIG, [f"model.path={other}", "trainer.precision=bf16"]))
    init_pretrained("tiny", tmp_path / "ours")
    rl.trainer.check_fp8(load_config(REPO_CONFIG, [f"model.path={tmp_path / 'ours'}", "trainer.precision=fp8"]))
    rl.trainer.check_fp8(load_config(REPO_CONFIG, ["trainer.precision=fp8"]))  # preset:tiny


def test_a_preset_with_mtp_modules_is_its_own_starting_policy(tmp_path):
    plain = GRPOTrainer(load_config(REPO_CONFIG, [f"trainer.output_dir={tmp_path}"]), log=None)
    mtp = GRPOTrainer(load_config(REPO_CONFIG, [f"trainer.output_dir={tmp_path}", "model.num_nextn_predict_layers=1"]),
                      log=None)
    assert plain.start_policy_key() == {"preset": "preset:tiny", "seed": 0}  # as before MTP could be asked for
    assert mtp.start_policy_key() == {"preset": "preset:tiny", "seed": 0, "num_nextn_predict_layers": 1}
    with pytest.raises(ConfigError, match="model.num_nextn_predict_layers: applies to 'preset:' policies only"):
        load_config(REPO_CONFIG, [f"model.path={tmp_path}", "model.num_nextn_predict_layers=1"])



    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"trainer.output_dir: cannot write into .*file/run"):
        rl.trainer.prepare_output_dir(tmp_path / "file" / "run", resume=False, overwrite=False)


def test_a_read_only_output_dir_is_named_before_anything_starts(tmp_path):
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if os.access(read_only, os.W_OK):  # root writes anywhere; the test above covers this machine
            pytest.skip("this user can write into a read-only folder")
        with pytest.raises(ConfigError, match="trainer.output_dir: cannot write into"):
            rl.trainer.prepare_output_dir(read_only / "run", resume=False, overwrite=False)
    finally:
        read_only.chmod(0o700)
