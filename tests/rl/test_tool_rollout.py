"""Multi-turn rollouts with tools: the loop on a scripted engine (turn by turn, what goes back to the engine), then
for real, a vLLM engine serving a policy taught to call the tool, checked token for token and logprob for logprob
against the learner."""

import dataclasses
import time
from pathlib import Path

import pytest
import torch

from model import load_pretrained, load_tokenizer
from model.vllm_engine import Completion
from problems import Problem, build_prompt
from rewards.tools import OUTPUT_CLOSE, OUTPUT_OPEN, ToolRunner, observation_ids
from rl import tool_rollout
from rl.batch import LearnerBatch, RolloutBatch
from rl.learner import Learner
from rl.learner_settings import LearnerSettings
from rl.tool_rollout import ToolRolloutStats, ToolSettings, generate_with_tools

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def runner():
    runner = ToolRunner(timeout_s=2.0, num_workers=2)
    yield runner
    runner.shutdown()


def scripted_engine(monkeypatch, tokenizer, scripts):
    """Stands in for vLLM (model.vllm_engine.sample): prompt [0, key] answers scripts[key]'s turns in order, each
    (text, finish reason); records every call's prompts and sampling parameters."""
    calls = []

    def sample(engine, prompts, params):
        calls.append(([list(p) for p in prompts], params))
        results = []
        for prompt in prompts:
            text, reason = scripts[prompt[1]].pop(0)
            ids = tokenizer.encode(text, add_special_tokens=False) + ([tokenizer.eos_token_id] if reason == "eos" else [])
            results.append([Completion(ids, [-0.25] * len(ids), reason)])
        return results

    monkeypatch.setattr(tool_rollout, "sample", sample)
    return calls


def test_each_turn_is_one_engine_call_and_each_call_an_observation_appended_token_for_token(monkeypatch, tokenizer,
                                                                                           runner):
    scripts = {
        100: [("Let me compute.\n```python\nprint(6 * 7)\n```\n", "stop"), ("So it is 42.", "eos")],
        101: [("A list:\n```\n", "stop"),  # a fence that closes no Python block: the turn goes on
              ("- a\n```\nnow\n```python\nwhile True:\n    pass\n```\n", "stop"),
              ("It ran too long.", "eos")],
        102: [("No tool needed.", "eos")],
        103: [("```python\nprint(1)\n```\n", "stop"), ("```python\nprint(2)\n```\n", "stop"),
              ("```python\nprint(3)\n```\n", "stop")],  # still calling in its last turn: truncated, not run
    }
    calls = scripted_engine(monkeypatch, tokenizer, scripts)
    prompts = [[0, key] for key in scripts]
    stats = ToolRolloutStats()
    started = time.perf_counter()
    samples = generate_with_tools(None, tokenizer, runner, prompts, n=1, max_tokens=200, seeds=[11, 12, 13, 14],
                                  settings=ToolSettings(max_turns=3, timeout_s=2.0, max_observation_tokens=32),
                                  stats=stats)
    elapsed = time.perf_counter() - started
    assert [len(prompts_of_turn) for prompts_of_turn, _ in calls] == [4, 3, 2]  # the open rollouts, one call a turn

    def text(ids):
        return tokenizer.decode(ids)

    answered, looped, direct, calling = samples
    assert [text(s.token_ids) for s in answered.segments()] == [
        "Let me compute.\n```python\nprint(6 * 7)\n```\n", OUTPUT_OPEN + "42" + OUTPUT_CLOSE,
        "So it is 42.<｜end▁of▁sentence｜>"]
    assert [s.logprobs is None for s in answered.segments()] == [False, True, False]
    assert not answered.truncated
    # what went back to the engine is exactly the prompt, the sampled ids and the observation ids
    observation = observation_ids(tokenizer, "42", 32)
    first = tokenizer.encode("Let me compute.\n```python\nprint(6 * 7)\n```\n", add_special_tokens=False)
    assert calls[1][0][0] == [0, 100] + first + observation
    assert answered.completion_ids == first + observation + answered.segments()[2].token_ids
    assert text(looped.segments()[1].token_ids) == OUTPUT_OPEN + "TimeoutError: the program ran past 2 s" + OUTPUT_CLOSE
    assert len(looped.observation_spans) == 1 and not looped.truncated
    assert direct.observation_spans == [] and not direct.truncated and len(direct.segments()) == 1
    assert calling.truncated and len(calling.observation_spans) == 2  # the third call was never run
    assert stats.tool_calls == 4 and stats.tool_seconds >= 2.0
    assert elapsed < 2.0 * 2 + 8  # the two calls of turn 1 (one of them hangs) ran at once
    # every rollout draws each turn with a seed of its own
    seeds = [params["seed"] for _, turn in calls for params in turn]
    assert len(set(seeds)) == len(seeds) and all(params["stop"] == ["\n```\n"] for _, t in calls for params in t)


def test_the_token_budget_counts_observations_and_ends_a_rollout_that_has_no_room_to_read_one(monkeypatch, tokenizer,
                                                                                           runner):
    call = "```python\nprint('x' * 500)\n```\n"
    scripts = {100: [(call, "stop"), ("ok", "eos")], 101: [(call, "stop")]}
    calls = scripted_engine(monkeypatch, tokenizer, scripts)
    used = len(tokenizer.encode(call, add_special_tokens=False))
    settings = ToolSettings(max_turns=4, max_observation_tokens=24)
    roomy, = generate_with_tools(None, tokenizer, runner, [[0, 100]], n=1, max_tokens=used + 24 + 3, seeds=[1],
                                 settings=settings)
    assert len(roomy.segments()[1].token_ids) == 24 and not roomy.truncated  # the output cut to its budget
    assert calls[1][1][0]["max_tokens"] == 3  # the next turn gets what is left
    cramped, = generate_with_tools(None, tokenizer, runner, [[0, 101]], n=1, max_tokens=used + 24, seeds=[1],
                                   settings=settings)
    assert cramped.truncated and cramped.observation_spans == [] and cramped.completion_ids == \
        tokenizer.encode(call, add_special_tokens=False)


# ------------------------------------------------------------------------------------------------ for real


def tool_traces(tokenizer):
    """Prompt ids and completion ids of a few products answered through the tool."""
    rows = []
    for a, b in [(12, 34), (23, 45)]:
        prompt = build_prompt(Problem(f"t{a}", f"What is {a} * {b}?", str(a * b), "", "synthetic", None), tokenizer)
        text = (f"<think>\n```python\nprint({a}*{b})\n```\n```output\n{a * b}\n```\n</think>\n"
                f"The answer is \\boxed{{{a * b}}}.")
        rows.append((prompt, tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]))
    return rows


@pytest.fixture(scope="session")
def tool_checkpoint(tiny_checkpoint, tmp_path_factory):
    """The tiny policy taught by heart to answer two products by calling the tool: every token of the traces at a
    loss under 0.05 nats (probability over 0.95), so greedy decoding writes them whatever float kernels the process
    runs (a mean loss under 0.02 left one token near a tie, and greedy wrote a stray byte in a full run)."""
    from model import save_pretrained

    torch.manual_seed(0)
    policy = load_pretrained(tiny_checkpoint).train()
    tokenizer = load_tokenizer(tiny_checkpoint)
    rows = tool_traces(tokenizer)
    width = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    weights = torch.zeros(len(rows), width - 1)
    for i, (prompt, completion) in enumerate(rows):
        ids[i, :len(prompt) + len(completion)] = torch.tensor(prompt + completion)
        weights[i, len(prompt) - 1:len(prompt) + len(completion) - 1] = 1.0
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    for _ in range(600):
        logits = policy(ids).logits[:, :-1]
        token_loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
        worst = token_loss[weights.flatten() > 0].max().item()
        if worst < 0.05:
            break
        optimizer.zero_grad()
        ((token_loss * weights.flatten()).sum() / weights.sum()).backward()
        optimizer.step()
    assert worst < 0.05
    return save_pretrained(policy.eval(), tmp_path_factory.mktemp("tools") / "policy", tokenizer_dir=tiny_checkpoint)


@pytest.fixture(scope="session")
def tool_engine(tool_checkpoint):
    """One vLLM engine serving the tool-calling policy for the real-engine tests, kept for the session: freeing an
    in-process engine tears down vLLM's model-parallel groups, which every engine of the process shares (a later
    engine then sampled garbage). Its logprobs are those of the distribution that sampled, as the rollout workers'
    engines report them."""
    from model.vllm_engine import make_engine

    return make_engine(tool_checkpoint, max_model_len=256, max_num_seqs=16, logprobs_mode="processed_logprobs")


@pytest.mark.slow
def test_real_engine_rollouts_reach_the_learner_as_sampled_ids_and_observation_ids(tool_checkpoint, tool_engine,
                                                                                  runner, monkeypatch):
    """vLLM samples multi-turn rollouts that call the tool; the learner's input ids are exactly the prompt, every
    turn's sampled ids and every observation's ids, and the learner's logprobs of the policy's tokens equal the
    engine's (to the existing logprob-match test's 1e-4), while no loss or mismatch counts the observations."""
    from rl.config import AlgorithmConfig

    tokenizer = load_tokenizer(tool_checkpoint)
    engine = tool_engine
    sampled, observed = [], []
    real_sample, real_observation_ids = tool_rollout.sample, tool_rollout.observation_ids
    monkeypatch.setattr(tool_rollout, "sample",
                        lambda engine, prompts, params: sampled.append(([list(p) for p in prompts],
                                                                        real_sample(engine, prompts, params)))
                        or sampled[-1][1])
    monkeypatch.setattr(tool_rollout, "observation_ids",
                        lambda *a: observed.append((len(sampled) - 1, real_observation_ids(*a))) or observed[-1][1])
    prompts = [prompt for prompt, _ in tool_traces(tokenizer)]
    samples = generate_with_tools(engine, tokenizer, runner, prompts, n=4, max_tokens=96, seeds=[1, 2],
                                  settings=ToolSettings(max_turns=3, timeout_s=2.0, max_observation_tokens=32),
                                  temperature=0.6)
    called = [s for s in samples if s.observation_spans]
    assert len(called) >= 5, [tokenizer.decode(s.completion_ids) for s in samples]  # the policy calls the tool
    # Replay the loop from what the engine was sent and returned and the observations made: every request is the
    # prompt, the rollout's sampled ids so far and its observation ids, nothing decoded and encoded again.
    built = {row: [] for row in range(len(samples))}
    open_rows = list(range(len(samples)))
    for turn, (requests, completions) in enumerate(sampled):
        assert len(requests) == len(open_rows)
        made_here = [ids for made_in, ids in observed if made_in == turn]
        for row, request, (completion,) in zip(open_rows, requests, completions):
            sample = samples[row]
            before = len(built[row])
            extra = request[len(sample.prompt_ids) + before:]
            assert request[:len(sample.prompt_ids) + before] == sample.prompt_ids + built[row]
            if extra:  # the observation of the call that ended the rollout's last turn
                assert extra in [ids for made_in, ids in observed if made_in == turn - 1]
                assert (before, before + len(extra)) in sample.observation_spans
                built[row] += extra
            built[row] += completion.token_ids
        assert all(len(ids) <= 32 for ids in made_here)
        open_rows = [row for row in open_rows if len(samples[row].completion_ids) > len(built[row])
                     or any(start == len(built[row]) for start, _ in samples[row].observation_spans)]
    for row, sample in enumerate(samples):
        assert sample.completion_ids == built[row]
    batch = LearnerBatch.from_rollouts(RolloutBatch(samples, torch.arange(len(samples)),
                                                    advantages=torch.zeros(len(samples))), pad_id=2,
                                       mask_truncated=False)
    for row, sample in enumerate(samples):
        length = len(sample.prompt_ids) + len(sample.completion_ids)
        assert batch.input_ids[row, :length].tolist() == sample.prompt_ids + built[row]
    assert any("```output\n" in tokenizer.decode(s.completion_ids) and str(12 * 34) in tokenizer.decode(
        s.completion_ids) for s in samples[:4])  # the program ran and printed its product
    learner = Learner(str(tool_checkpoint), LearnerSettings.from_config(AlgorithmConfig()), total_steps=1,
                      max_completion_length=96, pack=True, temperature=0.6)
    logprobs = learner.logprobs(batch)
    policy_tokens = batch.policy_mask.bool()
    assert (logprobs - batch.rollout_logprobs)[policy_tokens].abs().max() <= 1e-4
    observation_tokens = ~policy_tokens & (torch.arange(batch.completion_ids.size(1)) < batch.completion_lengths[:, None])
    assert observation_tokens.sum() > 0
    # observations are not compared: rollout logprobs 5 nats off there leave the mismatch metric where it was
    skewed = dataclasses.replace(batch, rollout_logprobs=batch.rollout_logprobs - 5.0 * observation_tokens)
    for compared in (batch, skewed):
        mismatch = learner._mismatch_metrics([logprobs], [compared])
        assert mismatch["mismatch/logprob_abs_diff_max"] <= 1e-4


# Right after the test above, on its engine: an in-process engine another test frees (an evaluation, say) leaves
# vLLM unable to serve from this process, so the real-engine tests here come before the rest.
@pytest.mark.slow
def test_search_with_tools_on_a_real_engine_runs_the_calls_the_policy_writes(tool_checkpoint, tool_engine):
    """search.solve(..., tools=["python"]) with vLLM serving the policy that calls the tool: the chosen solution
    holds the call's real output, and the budget counted the policy's tokens only."""
    from search import solve
    from search.vllm_generator import VllmStepGenerator

    tokenizer = load_tokenizer(tool_checkpoint)
    generator = VllmStepGenerator(tool_engine, tokenizer)
    prompt, _ = tool_traces(tokenizer)[0]
    for method, options in (("greedy", {}), ("self_consistency", {"n": 4})):
        result = solve(prompt, generator, method, budget_tokens=2000, tools=["python"], tool_timeout_s=2.0,
                       **options)
        text = "".join(result.steps)
        program = text.partition("```python\n")[2].partition("\n```")[0]
        assert program.startswith("print(") and OUTPUT_OPEN in text, text
        output = text.partition(OUTPUT_OPEN)[2].partition(OUTPUT_CLOSE)[0]
        assert output == str(eval(program.removeprefix("print(").removesuffix(")")))  # noqa: S307 - the real run's
        inserted = len(observation_ids(tokenizer, output, 64))
        if method == "greedy":  # one sample: its tokens less the output's (and its end-of-text token)
            assert result.tokens.policy == len(tokenizer.encode(text, add_special_tokens=False)) - inserted + 1
        assert result.tokens.prefill > len(prompt) * result.tokens.policy_calls  # the calls after the tool's output


@pytest.mark.slow
def test_reasonrl_solve_with_tools_answers_through_the_call(tool_checkpoint, tool_engine, monkeypatch, capsys):
    """`reasonrl solve "What is 12 * 34?" --model DIR --tools python`: the command's checks, the search and the
    sandbox for real, on the session's engine for DIR (a second engine of the same policy would only cost time)."""
    import search.api
    from rl.cli import main
    from search.vllm_generator import VllmStepGenerator

    generator = VllmStepGenerator(tool_engine, load_tokenizer(tool_checkpoint))
    monkeypatch.setattr(search.api, "load_generator", lambda model, speculative_tokens=0: generator)
    assert main(["solve", "What is 12 * 34?", "--model", str(tool_checkpoint), "--method", "greedy", "--budget", "200",
                 "--gold", "408", "--tools", "python", "--tool-timeout", "2"]) == 0
    shown = capsys.readouterr().out
    assert "answer: 408 (correct)" in shown and OUTPUT_OPEN + "408" + OUTPUT_CLOSE in shown, shown


def test_a_call_format_the_policy_cannot_use_is_an_error_before_the_warm_start_or_ray(tmp_path, monkeypatch):
    import rl.trainer
    from model.config import ConfigError  # what the CLI reports (rl.config's is a kind of it)
    from rl.config import load_config
    from rl.trainer import GRPOTrainer

    config = load_config(REPO / "experiments" / "tiny_arith.yaml",
                         [f"trainer.output_dir={tmp_path}", "rollout.tools=[python]",
                          "rollout.max_observation_tokens=12"])
    trainer = GRPOTrainer(config, log=lambda *_: None)

    def no_ray(*args, **kwargs):  # an earlier test of this process may have left Ray up: watch the call, not the state
        raise AssertionError("the trainer joined or started Ray before refusing the call format")

    monkeypatch.setattr(rl.trainer, "join_or_start", no_ray)
    with pytest.raises(ConfigError, match=r"rollout.max_observation_tokens: is 12, but the output's fences and truncation marker take \d+"):
        trainer.setup()
    assert not (tmp_path / "init").exists()
    with pytest.raises(ConfigError, match=r"rollout.tools: unknown tool 'shell'"):
        load_config(REPO / "experiments" / "tiny_arith.yaml", ["rollout.tools=[python,shell]"])
    with pytest.raises(ConfigError, match=r"rollout.max_turns: must be >= 1"):
        load_config(REPO / "experiments" / "tiny_arith.yaml", ["rollout.max_turns=0"])


@pytest.mark.slow
@pytest.mark.parametrize("off_policy", [[], ["trainer.one_step_off_policy=true", "algorithm.rollout_correction_cap=2"]])
def test_a_grpo_job_with_tools_learns_from_multi_turn_rollouts(tool_checkpoint, ray_session, tmp_path, monkeypatch,
                                                               off_policy):
    """Two GRPO steps of the policy that calls the tool, through Ray: the calls run, their outputs reach the learner
    masked (the mismatch of the policy's tokens stays at fp32 noise), the held-out evaluation calls the tool too;
    on-policy and one step off-policy. The job's problems are the two the policy learned to call the tool on."""
    import json

    from rl import trainer as trainer_module
    from rl.api import run_to_end
    from rl.config import load_config
    from rl.trainer import GRPOTrainer

    problems = [Problem(f"t{a}", f"What is {a} * {b}?", str(a * b), "", "synthetic", None) for a, b in [(12, 34),
                                                                                                       (23, 45)]]
    monkeypatch.setattr(trainer_module, "load_problems", lambda data: (problems, problems))

    config = load_config(REPO / "experiments" / "tiny_arith.yaml", [
        f"model.path={tool_checkpoint}", "sft.steps=0",
        "rollout.prompts_per_step=2", "rollout.group_size=4", "rollout.max_new_tokens=80", "rollout.eval_samples=2",
        "rollout.tools=[python]", "rollout.max_turns=3", "rollout.tool_timeout_s=2", "trainer.steps=2",
        "trainer.eval_every=2", "trainer.save_every=0", "algorithm.drop_zero_variance_groups=false",
        "logging.progress=false", "logging.tensorboard=false", "reward.num_workers=1", f"trainer.output_dir={tmp_path}",
        *off_policy])
    run_to_end(GRPOTrainer(config, log=lambda *_: None))
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in logged if "reward/mean" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(r["tools/calls_per_sample"] > 0.25 and 0 < r["tools/observation_token_frac"] < 0.5 for r in steps)
    assert all(0 < r["time/tools_s"] and 0 < r["tools/sandbox_time_frac"] < 1 for r in steps)
    # observation tokens are not compared (off-policy: step 2's samples come from the policy one update behind)
    assert steps[0]["mismatch/logprob_abs_diff_max"] < 1e-3 and all(r["rollout/policy_lag"] == (1 if off_policy and
                                                                                             r["step"] == 2 else 0)
                                                                    for r in steps)
    evaluations = [r for r in logged if "eval/pass@1" in r]
    assert [r["step"] for r in evaluations] == [0, 2]
    assert all(r["eval/tool_calls_per_answer"] > 0.25 for r in evaluations)
    # samples.jsonl: the graded completion is the policy's own text, the transcript shows what the tool answered
    shown = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert shown and not any(OUTPUT_OPEN in r["completion"] for r in shown)
    assert any(OUTPUT_OPEN in r["transcript"] for r in shown)


@pytest.mark.slow
def test_the_tiny_tools_job_warm_starts_on_both_kinds_of_trace_and_trains_with_the_tool(ray_session, tmp_path):
    """experiments/tiny_tools.yaml, a few steps of it: the warm start on synthetic_tools' traces, then GRPO with the
    python tool and an evaluation with it, through Ray, vLLM and the sandbox."""
    import json

    from rl.api import run_to_end
    from rl.config import load_config
    from rl.trainer import GRPOTrainer

    config = load_config(REPO / "experiments" / "tiny_tools.yaml", [
        "sft.steps=30", "data.num_train=200", "data.num_eval=4", "rollout.prompts_per_step=4", "rollout.group_size=4",
        "rollout.eval_samples=2", "trainer.steps=2", "trainer.eval_every=2", "trainer.save_every=0",
        "algorithm.drop_zero_variance_groups=false", "logging.progress=false", "logging.tensorboard=false",
        f"trainer.output_dir={tmp_path}"])
    run_to_end(GRPOTrainer(config, log=lambda *_: None))
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in logged if "reward/mean" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for record in steps:
        assert {"tools/calls_per_sample", "tools/observation_token_frac", "time/tools_s"} <= set(record)
        assert record["mismatch/logprob_abs_diff_max"] < 1e-3
    assert [r["step"] for r in logged if "eval/tool_calls_per_answer" in r] == [0, 2]
    assert (tmp_path / "sft" / "model.safetensors").exists()


@pytest.mark.slow
def test_eval_with_tools_lets_the_policy_call_them_and_grades_its_own_answer(tool_checkpoint, tmp_path):
    """reasonrl eval --tools python, in-process: the policy that learned to call the tool runs it as it answers;
    the scores count the calls, and samples.jsonl grades the policy's words."""
    import json

    from rl.api import evaluate_checkpoint

    bench = tmp_path / "products.jsonl"
    bench.write_text("".join(json.dumps({"id": f"p{a}", "problem": f"What is {a} * {b}?", "answer": str(a * b)}) + "\n"
                             for a, b in [(12, 34), (23, 45)]))
    results = evaluate_checkpoint(tool_checkpoint, str(bench), n=4, max_tokens=96, temperature=0.6, top_p=0.95,
                                  tools=["python"], max_turns=3, tool_timeout_s=2.0, max_observation_tokens=32,
                                  out=tmp_path / "eval", log=lambda *_: None)
    scores = next(iter(results.values())).scores
    assert scores["tool_calls_per_answer"] > 0.5 and scores["pass@1"] >= 0.5  # (it mixes up its two problems)
    settings = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert "python" in json.dumps(settings)
    records = [json.loads(line) for line in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    assert not any(OUTPUT_OPEN in output for r in records for output in r["outputs"])  # what was graded
    assert any(OUTPUT_OPEN in transcript for r in records for transcript in r["transcripts"])
    without = evaluate_checkpoint(tool_checkpoint, str(bench), n=4, max_tokens=96, temperature=0.6, top_p=0.95,
                                  log=lambda *_: None)
    assert "tool_calls_per_answer" not in next(iter(without.values())).scores
    # searched (eval --search greedy --tools python): the search runs the call; the policy's words are graded
    searched = evaluate_checkpoint(tool_checkpoint, str(bench), n=1, max_tokens=96, search="greedy", budget=200,
                                   tools=["python"], tool_timeout_s=2.0, out=tmp_path / "search", log=lambda *_: None)
    scores = next(iter(searched.values())).scores
    assert scores["pass@1"] >= 0.5 and scores["tool_calls_per_answer"] >= 0.5
    records = [json.loads(line) for line in (tmp_path / "search" / "samples.jsonl").read_text().splitlines()]
    assert not any(OUTPUT_OPEN in output for r in records for output in r["outputs"])
    assert any(OUTPUT_OPEN in transcript for r in records for transcript in r["transcripts"])
