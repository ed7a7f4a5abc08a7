"""An in-process vLLM engine freed while another lives must leave the process's shared distributed state alone
(model.vllm_engine.keep_shared_state_while_engines_live): the search engine a user holds keeps serving after
`evaluate_checkpoint` frees its own."""

import gc

import pytest


@pytest.mark.slow
def test_an_engine_keeps_serving_after_another_engine_of_the_process_is_freed(tiny_checkpoint):
    from model.vllm_engine import make_engine, sample

    kept = make_engine(tiny_checkpoint, max_model_len=128, max_num_seqs=4)
    params = [dict(n=1, max_tokens=8, temperature=0.0, seed=0)]
    before = sample(kept, [[1, 2, 3]], params)[0][0].token_ids
    freed = make_engine(tiny_checkpoint, max_model_len=128, max_num_seqs=4)
    assert sample(freed, [[1, 2, 3]], params)[0][0].token_ids == before
    del freed
    gc.collect()
    assert sample(kept, [[1, 2, 3]], params)[0][0].token_ids == before  # failed: "pipeline model parallel group is
    #                                                                     not initialized"
