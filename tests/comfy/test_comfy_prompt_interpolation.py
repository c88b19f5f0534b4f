"""Gen-L condition interpolation inside the window loop: prompts of different token lengths are blended.

A cond of 16 tokens repeated to 32 attends exactly like the original (softmax over repeated keys), so a prompt
schedule of ``cat`` (16 tokens) and ``cat`` padded to 32 tokens must give the plain ``cat`` result; ``cat`` (16) and
``dog`` (32) must blend (differ from both the majority rule and from either prompt) and log no fallback.
"""
import logging

import torch
from longanim.nodes import window_nodes as wn


def _genl(model):
    return wn.LongAnimZoLAWindows().run(model, 8, 4, 1, "zola", 0, prompt_rule="genl")[0]


def _tokens(cond, n):
    t, extra = cond[0]
    return [[t.repeat(1, n // t.shape[1], 1), dict(extra)]]


def test_genl_interpolates_prompts_of_different_token_lengths(host, caplog):
    model, latent = host.wan(), host.wan_latent(16)
    cat, dog = host.cond("a cat", "wan21"), _tokens(host.cond("a dog", "wan21"), 32)
    patched = _genl(model)
    with caplog.at_level(logging.WARNING):
        blended = host.ksample(patched, latent, steps=2, positive=wn.tag_conditioning(cat, 0, 7)
                               + wn.tag_conditioning(dog, 8, 15))
    assert not [r for r in caplog.records if "prompt_rule 'genl'" in r.getMessage()]
    majority = wn.LongAnimZoLAWindows().run(model, 8, 4, 1, "zola", 0, prompt_rule="zola")[0]
    by_majority = host.ksample(majority, latent, steps=2, positive=wn.tag_conditioning(cat, 0, 7)
                               + wn.tag_conditioning(dog, 8, 15))
    assert torch.isfinite(blended).all()
    assert (blended - by_majority).abs().max() > 1e-4


def test_padding_a_prompt_does_not_change_it(host):
    model, latent = host.wan(), host.wan_latent(16)
    cat = host.cond("a cat", "wan21")
    patched = _genl(model)
    same = host.ksample(patched, latent, steps=2, positive=wn.tag_conditioning(cat, 0, 7)
                        + wn.tag_conditioning(_tokens(cat, 32), 8, 15))
    plain = host.ksample(patched, latent, steps=2, positive=wn.tag_conditioning(cat, 0, 15))
    # repeating keys/values leaves softmax attention unchanged up to float32 summation order
    assert torch.allclose(same, plain, atol=1e-5, rtol=1e-5)
