"""Every search method on a real engine: the tiny policy served by vLLM (the session's shared engine), a rule-based
process reward (the sympy step checker) as the value function, and the verifier built from the gold answer. The
tiny policy is barely trained, so what is checked is the machinery: steps end at the delimiter, tokens are counted
as the engine produced them, the budget holds, and the tree exports."""

import json

import pytest

from search.api import METHODS, solve
from search.reward_models import step_checker_value


@pytest.fixture(scope="module")
def generator(vllm_engine, tiny_checkpoint):
    from model import load_tokenizer
    from search.vllm_generator import VllmStepGenerator

    return VllmStepGenerator(vllm_engine, load_tokenizer(tiny_checkpoint))


@pytest.fixture(scope="module")
def prompt_ids(tiny_checkpoint):
    from model import load_tokenizer
    from problems import build_prompt, split_synthetic

    _, problems = split_synthetic(0, 1, seed=5, levels=[2])
    return build_prompt(problems[0], load_tokenizer(tiny_checkpoint)), problems[0].answer


def test_the_engine_continues_a_prefix_step_by_step(generator, prompt_ids):
    from search.generator import STEP_DELIMITER

    prompt, _ = prompt_ids
    continuations = generator.continue_prefix(prompt, 4, max_tokens=12, temperature=1.0, stop=[STEP_DELIMITER],
                                              seed=0)
    assert len(continuations) == 4
    for c in continuations:
        assert 1 <= c.num_tokens <= 12 and c.logprob <= 0.0
        if c.stop_reason == "step":
            assert c.text.endswith(STEP_DELIMITER) and STEP_DELIMITER not in c.text[:-1]
        assert c.stop_reason in ("step", "eos", "length")
    # the same seed samples the same steps
    again = generator.continue_prefix(prompt, 4, max_tokens=12, temperature=1.0, stop=[STEP_DELIMITER], seed=0)
    assert [c.token_ids for c in again] == [c.token_ids for c in continuations]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_on_the_engine_within_its_budget(generator, prompt_ids, method):
    prompt, gold = prompt_ids
    budget, max_tokens = 160, 48
    options = {"selection": "gumbel", "simulations_per_step": 4, "top_k": 2} if method == "mcts" else {}
    result = solve(prompt, generator, method, budget_tokens=budget, value_fn=step_checker_value, gold=gold,
                   max_step_tokens=16, max_tokens=max_tokens, seed=1, **options)
    tokens = result.tokens
    assert tokens.policy > 0 and tokens.policy_calls > 0 and tokens.prefill >= len(prompt)
    assert tokens.policy < budget + 8 * max_tokens  # a call starts only under budget: one call may overshoot
    generated = sum(len(n.token_ids) for n in result.tree.nodes())
    assert generated <= tokens.policy  # repeated samples merge into one node but are still counted
    if result.answer is not None:
        assert result.correct is not None and result.steps
    exported = json.loads(result.to_json())
    assert count_nodes(exported["tree"]) == sum(1 for _ in result.tree.nodes())
    assert (not exported["tree"]["chosen"]) == (result.chosen is None)  # the root is marked when a path is chosen


def count_nodes(exported):
    return 1 + sum(count_nodes(child) for child in exported["children"])


def test_many_prefixes_go_to_the_engine_in_one_call(generator, prompt_ids):
    from search.generator import STEP_DELIMITER, continue_many

    prompt, _ = prompt_ids
    prefixes = [prompt, prompt + generator.encode("<think>\n")]
    out = continue_many(generator, prefixes, 3, max_tokens=10, temperature=1.0, stop=[STEP_DELIMITER], seeds=[1, 2])
    assert [len(c) for c in out] == [3, 3]
    assert all(1 <= c.num_tokens <= 10 for cs in out for c in cs)


def test_a_learned_reward_model_guides_beam_search_and_its_tokens_are_counted(generator, prompt_ids, tiny_checkpoint,
                                                                               tmp_path):
    from model.reward_model import RewardModel, save_reward_model
    from search.reward_models import CombinedValue, LearnedRewardModel

    folder = save_reward_model(RewardModel.from_policy(tiny_checkpoint, "prm"), tmp_path / "prm")
    prm = LearnedRewardModel(folder)
    prompt, gold = prompt_ids
    for value_fn in (prm, CombinedValue(prm)):
        result = solve(prompt, generator, "beam", budget_tokens=120, value_fn=value_fn, gold=gold,
                       max_step_tokens=12, max_tokens=40, seed=0, beam_width=2, num_children=2)
        assert result.tokens.reward_calls > 0 and result.tokens.reward >= result.tokens.reward_calls * len(prompt) // 2


def test_mcts_over_scored_rollouts_keeps_every_finish_as_a_candidate_on_the_engine(generator, prompt_ids):
    prompt, gold = prompt_ids
    result = solve(prompt, generator, "mcts", budget_tokens=200, value_fn=step_checker_value, gold=gold,
                   max_step_tokens=16, max_tokens=48, seed=1, num_children=2, scored_rollouts=True)
    valued = [n for n in result.tree.nodes() if not n.terminal and n.score is not None]
    assert valued
    for node in valued:  # its value is the score of a sampled finish, which hangs under it as a visited candidate
        assert any(c.terminal and c.visits == 1 and c.score == node.score for c in node.children)
    assert sum(len(n.token_ids) for n in result.tree.nodes()) <= result.tokens.policy
    assert result.tokens.policy < 200 + 2 * 48  # the last call started under budget, and perhaps a greedy finish


def test_concurrent_searches_share_engine_calls_on_the_engine(generator, prompt_ids):
    from search.api import solve_many
    from search.reward_models import step_checker_value

    class Counting:
        """The engine, counting the requests each batched call carries."""

        def __init__(self):
            self.batches = []

        def continue_requests(self, requests):
            self.batches.append(len(requests))
            return generator.continue_requests(requests)

        def encode(self, text):
            return generator.encode(text)

        def decode(self, ids):
            return generator.decode(ids)

    prompt, _ = prompt_ids
    counting = Counting()
    budget, max_tokens = 120, 48
    summaries = solve_many([prompt] * 4, counting, "mcts", budget_tokens=budget, seeds=[0, 1, 2, 3],
                           value_fn=step_checker_value, concurrency=4, max_step_tokens=16, max_tokens=max_tokens,
                           num_children=2)
    assert len(summaries) == 4
    for summary in summaries:
        assert 0 < summary["tokens"]["policy"] < budget + 2 * max_tokens
    assert sum(counting.batches) == sum(s["tokens"]["policy_calls"] for s in summaries)
    assert max(counting.batches) > 1  # calls of different searches went to the engine together


def test_mcts_with_path_expansion_on_the_engine(generator, prompt_ids):
    prompt, gold = prompt_ids
    budget, max_step_tokens = 200, 16
    result = solve(prompt, generator, "mcts", budget_tokens=budget, value_fn=step_checker_value, gold=gold,
                   max_step_tokens=max_step_tokens, max_tokens=48, seed=1, expansion="path", prune_at=0.0,
                   answer_by="vote")
    nodes = list(result.tree.nodes())[1:]
    assert nodes and all(n.score is not None for n in nodes)  # every sampled step is a node, valued
    assert all(not n.children for n in nodes if n.pruned)  # nothing is sampled below a pruned step
    assert result.tokens.policy_calls >= len(nodes)  # one call a sampled step; a repeated step adds no node
    assert sum(len(n.token_ids) for n in nodes) <= result.tokens.policy < budget + max_step_tokens + 48
