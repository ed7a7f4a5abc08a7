"""The command line, as a user meets it: what works, and each mistake a new user made, with the message it gets."""

import shutil
import time
from pathlib import Path

import pytest

from model import load_pretrained
from rl.cli import main

CONFIG = str(Path(__file__).parents[2] / "experiments" / "tiny_arith.yaml")


def test_model_init_writes_a_loadable_checkpoint_and_info_reads_it(tmp_path, capsys):
    assert main(["model", "init", "--preset", "tiny", "--out", str(tmp_path / "p"), "--seed", "3"]) == 0
    assert "4.35M parameters" in capsys.readouterr().out
    policy = load_pretrained(tmp_path / "p")
    assert policy.args.vocab_size == 2048 and (tmp_path / "p" / "tokenizer.json").exists()
    assert main(["model", "info", str(tmp_path / "p")]) == 0
    info = capsys.readouterr().out
    assert "architecture: DeepseekV3ForCausalLM" in info and "vllm_cpu: servable" in info
    assert f"parameters: {policy.num_parameters()}" in info


def test_bad_config_input_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    assert main(["train", CONFIG, "algorithm.epsilon_hgh=0.3"]) == 2
    assert "unknown field algorithm.epsilon_hgh" in capsys.readouterr().err
    assert main(["model", "init", "--preset", "huge", "--out", str(tmp_path / "q")]) == 2
    assert "unknown model preset 'huge'" in capsys.readouterr().err


@pytest.mark.parametrize("overrides, message", [
    (["reward.functions=[math_acuracy, format]"], "reward.functions[0]: unknown reward function 'math_acuracy' "
                                                  "(did you mean 'math_accuracy'?)"),
    (["reward.functions=[no_such_module:f, format]"], "reward.functions[0]: cannot load reward function"),
    (["algorithm.lr=.inf"], "algorithm.lr: must be a finite number"),
    (["algorithm.lr=.nan"], "algorithm.lr: must be a finite number"),
    (["trainer.steps=123456789012345678901234567890"], "trainer.steps: 123456789012345678901234567890 is too large"),
    (["rollout.num_workers=2"], "rollout.num_workers=2 rollout workers (1 CPU each) and the learners (1 CPU) need 3 "
                                "CPUs, but ray.num_cpus gives 2"),
    (["ray.rollout_resources={rollout_node: 1}"], "ray.rollout_resources: asks for 1 of resource 'rollout_node'"),
    (["rollout.attention_backend=AMX_MLA"], "rollout.attention_backend: AMX_MLA takes bf16 weights only"),
])
def test_train_mistakes_fail_at_once_naming_the_field(overrides, message, tmp_path, capsys):
    started = time.perf_counter()
    assert main(["train", CONFIG, f"trainer.output_dir={tmp_path / 'run'}", *overrides]) == 2
    assert message in capsys.readouterr().err
    assert time.perf_counter() - started < 20  # before Ray, SFT or any actor starts
    assert not (tmp_path / "run").exists()  # and nothing was written


def test_a_duplicated_yaml_key_is_an_error(tmp_path, capsys):
    config = tmp_path / "dup.yaml"
    config.write_text("trainer:\n  steps: 3\n  steps: 5\n")
    assert main(["train", str(config)]) == 2
    assert "key 'steps' is given twice" in capsys.readouterr().err


def test_an_output_dir_that_is_a_file_or_holds_a_run_is_refused(tmp_path, capsys):
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["train", CONFIG, f"trainer.output_dir={afile}"]) == 2
    assert "trainer.output_dir: " in capsys.readouterr().err
    run = tmp_path / "run"
    (run / "checkpoints" / "step_3").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("{}\n")
    assert main(["train", CONFIG, f"trainer.output_dir={run}"]) == 2
    error = capsys.readouterr().err
    assert "already holds a run (metrics.jsonl, checkpoints)" in error and "--resume" in error
    assert "trainer.overwrite=true" in error and (run / "metrics.jsonl").exists()  # nothing deleted
    assert main(["train", CONFIG, f"trainer.output_dir={run}", "--resume", "--overwrite"]) == 2
    assert "trainer.overwrite: cannot be combined with trainer.resume" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["eval", "--checkpoint", "c", "-k", "0"], "argument -n/-k: must be >= 1, got 0"),
    (["eval", "--model", "c", "-n", "0"], "argument -n/-k: must be >= 1, got 0"),
    (["eval", "--checkpoint", "c", "--limit", "-5"], "argument --limit: must be >= 0, got -5"),
    (["eval", "--checkpoint", "c", "--temperature", "-1"], "argument --temperature: must be a finite number >= 0"),
    (["eval", "--model", "c", "--top-p", "0"], "argument --top-p: must be a finite number > 0"),
    (["eval", "--bench", "gsm8k"], "one of the arguments --model/--checkpoint --predictions is required"),
    (["eval", "--model", "c", "--predictions", "p.jsonl"], "not allowed with argument"),
    (["sft", "--checkpoint", "c", "--out", "o", "--steps", "-5"], "argument --steps: must be >= 1, got -5"),
    (["sft", "--checkpoint", "c", "--out", "o", "--lr", "-1"], "argument --lr: must be a finite number > 0"),
    (["demo", "--seeds", "0"], "argument --seeds: must be >= 1"),
])
def test_command_line_arguments_out_of_range_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_checkpoint_paths_that_are_files_missing_or_truncated_are_named(tmp_path, capsys):
    assert main(["model", "init", "--out", str(tmp_path / "p")]) == 0
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    assert main(["eval", "--checkpoint", str(afile)]) == 2
    assert f"{afile} is a file, not a checkpoint folder" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert "no such checkpoint folder" in capsys.readouterr().err
    assert main(["sft", "--checkpoint", str(tmp_path / "p"), "--out", str(afile)]) == 2
    assert f"--out {afile} is a file" in capsys.readouterr().err
    assert main(["model", "init", "--out", str(afile)]) == 2
    assert f"{afile} is a file, not a folder" in capsys.readouterr().err
    weights = tmp_path / "p" / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.truncate(weights.stat().st_size // 2)
    started = time.perf_counter()
    assert main(["eval", "--checkpoint", str(tmp_path / "p")]) == 2
    assert f"{weights} is truncated" in capsys.readouterr().err
    assert time.perf_counter() - started < 10  # found before any engine starts


def test_train_help_lists_every_config_field(capsys):
    from rl.config import describe

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = capsys.readouterr().out
    assert "config fields" in shown
    for line in describe().splitlines():
        assert line.split(" (")[0] in shown  # every section.field


def test_eval_takes_its_problems_from_the_dataset_table_or_a_file(monkeypatch, tmp_path):
    """`reasonrl eval --bench` accepts every test set of the problems table (and its aliases), several at once, and a
    JSON Lines file of the user's own with its fields named."""
    from rl.api import load_benchmarks
    from problems import DATA_SOURCES, TEST_DATASETS, load_aime, split_synthetic

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in TEST_DATASETS:
        if DATA_SOURCES[name].hub_only:  # offline, it says it needs the hub
            with pytest.raises(FileNotFoundError, match="needs a machine with the hub"):
                load_benchmarks(name, limit=2)
            continue
        for alias in (name, *DATA_SOURCES[name].aliases):
            assert list(load_benchmarks(alias, limit=2)) == [alias]
    both = load_benchmarks("aime24, synthetic", limit=3, seed=4)
    assert both["aime24"] == load_aime(2024)[:3] and both["synthetic"] == split_synthetic(0, 3, 4)[1]
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"q": "What is 2 + 2?", "gold": "4", "key": "a"}\n{"q": "What is 3 + 3?", "gold": "6"}\n')
    problems = load_benchmarks(str(mine), problem_field="q", answer_field="gold", id_field="key")["mine"]
    assert [(p.id, p.question, p.answer) for p in problems] == [("a", "What is 2 + 2?", "4"),
                                                                ("mine-2", "What is 3 + 3?", "6")]


@pytest.mark.parametrize("bench, message", [
    ("mnist", "must be one of"),
    ("math_train", "a training set with no held-out split"),
    ("missing.jsonl", "benchmark file missing.jsonl does not exist"),
    ("BAD", "no field 'problem' (the row has q, gold; name the field with --problem-field)"),
])
def test_a_bad_benchmark_is_named_before_any_engine_starts(tmp_path, monkeypatch, capsys, bench, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "bad.jsonl").write_text('{"q": "What is 2 + 2?", "gold": "4"}\n')
    bench = "bad.jsonl" if bench == "BAD" else bench
    assert main(["model", "init", "--out", str(tmp_path / "p")]) == 0
    capsys.readouterr()
    started = time.perf_counter()
    assert main(["eval", "--model", str(tmp_path / "p"), "--bench", f"gsm8k,{bench}"]) == 2
    assert message in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "p"), "--top-p", "1.5"]) == 2
    assert "top_p must be in (0, 1], got 1.5" in capsys.readouterr().err
    assert time.perf_counter() - started < 10  # found before any engine starts


def test_eval_progress_goes_to_a_log_file_as_a_line_per_tenth(monkeypatch):
    """Written to a file (not a terminal), `reasonrl eval` reports progress as at most 11 plain lines per set."""
    from rl.api import progress_report

    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    lines = []
    with progress_report("gsm8k", 1319, log=lines.append) as update:
        for done in range(66, 1319, 66):
            update(done)
        update(1319)
    assert 9 <= len(lines) <= 11 and lines[-1] == "gsm8k: 1319/1319 problems generated"


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "argument --workers: must be >= 1, got 0"),
    (["--few-shot", "-1"], "argument --few-shot: must be >= 0, got -1"),
])
def test_eval_workers_and_few_shot_out_of_range_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--model", "c", *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_too_many_few_shot_examples_are_refused_before_any_engine_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["model", "init", "--out", str(tmp_path / "p")]) == 0
    capsys.readouterr()
    started = time.perf_counter()
    assert main(["eval", "--model", str(tmp_path / "p"), "--bench", "gsm8k,aime24", "--few-shot", "6"]) == 2
    assert "aime24: at most 4 few-shot examples" in capsys.readouterr().err
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("argv, message", [
    (["--search", "astar", "--budget", "100"], "--search must be one of"),
    (["--search", "beam"], "--search needs --budget"),
    (["--search", "beam", "--budget", "100", "--reward-model", "POLICY"], "is not a reward model: its config.json"),
])
def test_eval_through_search_mistakes_are_named_before_any_engine_starts(argv, message, tmp_path, monkeypatch,
                                                                        capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["model", "init", "--out", str(tmp_path / "p")]) == 0
    capsys.readouterr()
    argv = [str(tmp_path / "p") if a == "POLICY" else a for a in argv]
    started = time.perf_counter()
    assert main(["eval", "--model", str(tmp_path / "p"), "--bench", "synthetic", *argv]) == 2
    assert message in capsys.readouterr().err and time.perf_counter() - started < 10


def test_demo_reads_its_job_and_benchmark_and_reaches_the_first_seed(tmp_path, capsys, monkeypatch):
    """Everything demo() does before a seed trains (the job file, its held-out set's title) runs for real."""
    import rl.demo

    class FirstSeed(Exception):
        pass

    def first_seed(*_, **__):
        raise FirstSeed

    monkeypatch.setattr(rl.demo, "run_seed", first_seed)
    with pytest.raises(FirstSeed):
        rl.demo.demo(tmp_path / "runs", seeds=1, result_path=None,
                     config=rl.demo.REPO / "experiments" / "tiny_code.yaml")
    out = capsys.readouterr().out
    assert "demo: 1 seed(s) of experiments/tiny_code.yaml" in out and "--- seed 0" in out


def test_demo_of_a_missing_or_broken_job_file_fails_before_any_seed_runs(tmp_path, capsys):
    assert main(["demo", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "--config: no job file at" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("data:\n  train: synthetic_code\n  num_train: 0\n")
    assert main(["demo", "--config", str(broken), "--out", str(tmp_path / "runs")]) == 2
    assert "data.num_train" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_demo_scores_each_seeds_policies_at_r1_sampling_on_one_engine(tmp_path, monkeypatch):
    """Each seed's start (the policy its GRPO started from) and last checkpoint are scored in turn on one engine
    whose weights are swapped in place, sampled at temperature 0.6 and top-p 0.95 (the engine and the grading are
    faked here; the swap from a checkpoint's weights file runs for real in tests/rl/test_rollout.py)."""
    import rl.demo

    runs = []
    for seed in (0, 1):
        run_dir = tmp_path / f"seed_{seed}"
        for folder, weights in (("sft", f"start {seed}"), ("checkpoints/step_4", f"end {seed}")):
            (run_dir / folder).mkdir(parents=True)
            for name in ("config.json", "learner_state.pt", "trainer_state.json"):
                (run_dir / folder / name).write_text("{}")
            (run_dir / folder / "model.safetensors").write_text(weights)
            for tokenizer_file in (rl.demo.REPO / "model" / "tokenizer").iterdir():
                shutil.copy(tokenizer_file, run_dir / folder)
        runs.append({"seed": seed, "output_dir": str(run_dir), "start_policy": str(run_dir / "sft"),
                     "checkpoint": str(run_dir / "checkpoints" / "step_4")})
    engines, scored = [], []

    class Engine:
        def __init__(self, checkpoint, **_):
            engines.append(checkpoint)
            self.weights = None

        def load_weights(self, blob):
            self.weights = blob.decode()

        def generate(self, *_, **__):
            return self.weights

    def evaluate(generate, problems, tokenizer, *, temperature, top_p, **_):
        scored.append((generate(), temperature, top_p))
        return {"scores": {name: (0.5 if generate().startswith("end") else 0.25) for name in rl.demo.METRICS}}

    monkeypatch.setattr(rl.demo, "RolloutWorker", Engine)
    monkeypatch.setattr(rl.demo, "evaluate", evaluate)
    results = rl.demo.gains_at_r1_sampling(runs, ["data.num_eval=4"], rl.demo.REPO / "experiments" / "tiny_code.yaml")
    assert engines == [str(tmp_path / "seed_0" / "sft")]
    assert scored == [(w, 0.6, 0.95) for w in ("start 0", "end 0", "start 1", "end 1")]
    assert [r["pass@1_gain_points"] for r in results] == [25.0, 25.0]
    assert results[1]["before"]["pass@1"] == 0.25 and results[1]["after"]["pass@1"] == 0.5


def test_model_init_refuses_a_non_empty_folder_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["model", "init", "--out", str(out), "--seed", "1"]) == 0
    (out / "learner_state.pt").write_text("old optimizer state")
    before = (out / "model.safetensors").read_bytes()
    assert main(["model", "init", "--out", str(out), "--seed", "2"]) == 2
    assert "is not empty" in capsys.readouterr().err and (out / "model.safetensors").read_bytes() == before
    assert main(["model", "init", "--out", str(out), "--seed", "2", "--overwrite"]) == 0
    assert (out / "model.safetensors").read_bytes() != before and not (out / "learner_state.pt").exists()


@pytest.mark.parametrize("argv, message", [
    (["--budget", "100"], "--budget 100 is a search's token budget: give --search"),
    (["--levels", "0"], "--levels: synthetic levels start at 1"),
    (["--out", "RUN"], "holds a training run, whose samples.jsonl an evaluation would replace"),
    (["--out", "POLICY"], "is a checkpoint folder"),
    (["--out", "FILE/results"], "is a file, not a folder"),
])
def test_eval_mistakes_that_would_lose_work_are_named_before_any_engine_starts(argv, message, tmp_path, capsys):
    assert main(["model", "init", "--out", str(tmp_path / "p")]) == 0
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text("trainer: {}\n")
    (tmp_path / "run" / "samples.jsonl").write_text("{}\n")
    (tmp_path / "file").write_text("")
    capsys.readouterr()
    paths = {"RUN": tmp_path / "run", "POLICY": tmp_path / "p", "FILE": tmp_path / "file"}
    argv = [str(paths[a.split("/")[0]]) + a[len(a.split("/")[0]):] if a.split("/")[0] in paths else a for a in argv]
    started = time.perf_counter()
    assert main(["eval", "--model", str(tmp_path / "p"), "--bench", "synthetic", *argv]) == 2
    assert message in capsys.readouterr().err and time.perf_counter() - started < 10
    assert (tmp_path / "run" / "samples.jsonl").read_text() == "{}\n"


def test_evaluate_checkpoint_without_a_benchmark_is_an_error():
    from model.config import ConfigError
    from rl.api import evaluate_checkpoint

    with pytest.raises(ConfigError, match="no benchmark named"):
        evaluate_checkpoint("anywhere", None)


def test_a_search_evaluation_runs_one_search_a_problem_unless_asked_and_greedy_once(tmp_path, monkeypatch):
    """The engine and the searches are faked here; what is checked is how many searches a problem gets."""
    import contextlib

    import rl.api

    asked = []

    def search_evaluation(search, problems, prompts, *, k, **_):
        asked.append(k)
        raise StopIteration  # the count is all this test needs

    monkeypatch.setattr(rl.api, "open_generator", lambda *_, **__: contextlib.nullcontext(None))
    monkeypatch.setattr(rl.api, "evaluate_with_search", search_evaluation)
    assert main(["model", "init", "--out", str(tmp_path / "p")]) == 0
    for argv in (["--search", "best_of_n"], ["--search", "best_of_n", "-n", "4"], ["--search", "greedy", "-n", "8"]):
        with pytest.raises(StopIteration):
            rl.api.evaluate_checkpoint(str(tmp_path / "p"), "synthetic", limit=2, budget=50, search=argv[1],
                                       n=int(argv[3]) if len(argv) > 2 else None, log=lambda *_: None)
    assert asked == [1, 4, 1]


@pytest.mark.parametrize("argv, overrides, config, resume", [
    (["train", CONFIG, "--resume", "trainer.steps=5"], ["trainer.steps=5"], CONFIG, True),
    (["train", CONFIG, "a.b=1", "--overwrite", "c.d=2"], ["a.b=1", "c.d=2"], CONFIG, False),
    (["train", "--resume", "trainer.steps=5"], ["trainer.steps=5"], None, True),
])
def test_train_overrides_may_follow_its_flags(argv, overrides, config, resume):
    from rl.cli import parse_arguments

    args = parse_arguments(argv)
    assert (args.overrides, args.config, args.resume) == (overrides, config, resume)


def test_train_rm_mistakes_are_named_before_any_engine_starts(tmp_path, capsys):
    assert main(["model", "init", "--out", str(tmp_path / "p")]) == 0
    (tmp_path / "labels.jsonl").write_text("{}\n")
    capsys.readouterr()
    for argv, message in ((["--levels", "0"], "--levels: synthetic levels start at 1"),
                          (["--labels", str(tmp_path / "labels.jsonl")], "is a file, not a folder to write into")):
        assert main(["train-rm", "--policy", str(tmp_path / "p"), "--out", str(tmp_path / "rm"), *argv]) == 2
        assert message in capsys.readouterr().err
    assert (tmp_path / "labels.jsonl").read_text() == "{}\n"


@pytest.mark.parametrize("argv, message", [
    (["--tools", "bash"], "--tools: unknown tool 'bash'; tools: python"),
    (["--tools", "python", "--search", "beam", "--budget", "100", "--max-observation-tokens", "10"],
     "--max-observation-tokens: is 10"),
    (["--tools", "python", "--max-observation-tokens", "10"], "--max-observation-tokens: is 10, but the output's"),
    (["--tools", "python", "--predictions", "FILE"], "--tools with --predictions"),
])
def test_eval_with_tools_mistakes_are_named_before_any_engine_starts(argv, message, tmp_path, capsys):
    assert main(["model", "init", "--out", str(tmp_path / "p")]) == 0
    (tmp_path / "outputs.jsonl").write_text('{"id": "x", "output": "1"}\n')
    capsys.readouterr()
    argv = [str(tmp_path / "outputs.jsonl") if a == "FILE" else a for a in argv]
    source = [] if "--predictions" in argv else ["--model", str(tmp_path / "p")]
    started = time.perf_counter()
    assert main(["eval", *source, "--bench", "synthetic", *argv]) == 2
    assert message in capsys.readouterr().err and time.perf_counter() - started < 10
