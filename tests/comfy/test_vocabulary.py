"""Renamed inputs keep saved workflows working (docs/vocabulary.md, ``nodes/vocabulary.py``).

Every retired node id of ``vocabulary.RENAMED_NODES`` is registered as a hidden deprecated alias that shows its old
input names (with the current node's specs) and, run with a prompt saved under the old id and names, gives the
current node's output bit for bit. Each case sets every renamed input to a value other than its default, so a
mapping that is lost or points at the wrong input changes the output or fails.
"""
import pathlib
import sys

import comfy.samplers
import folder_paths
import pytest
import torch
from comfy_extras.nodes_custom_sampler import Noise_RandomNoise
from longanim.nodes import vocabulary
from longanim.nodes.registry import NODE_CLASS_MAPPINGS

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))
import tiny_lora  # noqa: E402


def old_kwargs(old_id: str, kwargs: dict) -> dict:
    """``kwargs`` (current names) as a prompt saved under ``old_id`` holds them."""
    back = {new: old for old, new in vocabulary.RENAMED_NODES[old_id][1].items()}
    return {back.get(k, k): v for k, v in kwargs.items()}


def test_every_retired_id_is_a_hidden_alias_with_its_old_names():
    for old_id, (new_id, renamed) in vocabulary.RENAMED_NODES.items():
        alias, target = NODE_CLASS_MAPPINGS[old_id], NODE_CLASS_MAPPINGS[new_id]
        assert alias.DEPRECATED and not getattr(target, "DEPRECATED", False), old_id
        assert alias.DEPRECATED_TARGET == new_id and new_id == old_id + "V2", old_id
        old_spec, new_spec = alias.INPUT_TYPES(), target.INPUT_TYPES()
        for section, inputs in new_spec.items():
            shown = {renamed.get(k, k): v for k, v in old_spec.get(section, {}).items()}
            assert shown.keys() == inputs.keys(), f"{old_id}.{section}: {sorted(shown)} vs {sorted(inputs)}"
            for name, entry in inputs.items():  # the same input; a retired meaning keeps its own tooltip
                assert shown[name][0] == entry[0], (old_id, name)
                assert {k: v for k, v in shown[name][1].items() if k != "tooltip"} == \
                    {k: v for k, v in entry[1].items() if k != "tooltip"}, (old_id, name)
        for old, new in renamed.items():
            assert any(old in s for s in old_spec.values()) and not any(new in s for s in old_spec.values()), old
            assert any(new in s for s in new_spec.values()), new


def _noise(out):
    return out[0].generate_noise({"samples": torch.zeros(1, 4, 24, 2, 2)})


def _sample_sd(host, out, frames=12):
    lat = {"samples": torch.randn(frames, 4, 4, 4, generator=torch.Generator().manual_seed(1))}
    return host.ksample(out[0], lat, seed=5, steps=3, cfg=1.0)


def _sample_wan(host, out, frames=9):
    return host.ksample(out[0], host.wan_latent(frames), seed=5, steps=2, cfg=1.0)


def _tensors(out):
    """Every tensor and number of a node's output tuple, flattened for an exact comparison."""
    flat = []
    for item in out:
        if isinstance(item, torch.Tensor):
            flat.append(item)
        elif isinstance(item, dict):  # LATENT
            flat += [v if isinstance(v, torch.Tensor) else repr(v) for _, v in sorted(item.items())]
        elif isinstance(item, list):  # conditioning: [[tensor, dict], ...]
            for tensor, extra in item:
                flat += [tensor, repr(sorted(extra.items()))]
        else:
            flat.append(item)
    return flat


class _Clip:
    """The CLIP interface Prompt Schedule calls (tokenize, encode_from_tokens_scheduled): one fixed tensor per
    prompt, as ``host.cond`` draws it."""

    def __init__(self, host):
        self.host = host

    def tokenize(self, text):
        return text

    def encode_from_tokens_scheduled(self, tokens):
        return self.host.cond(tokens, "wan21")


def _cases(host):
    """old id -> (keyword arguments under the current names, what to compare of the output)."""
    sd, wan = host.sd15(), host.wan()
    video = torch.randn(16, 8, 8, 3, generator=torch.Generator().manual_seed(2)).clamp(0, 1)
    low = {"samples": torch.randn(1, 16, 9, 4, 4, generator=torch.Generator().manual_seed(3))}
    progressive = NODE_CLASS_MAPPINGS["LongAnimProgressiveNoise"]().run(seed=0, alpha=0.8)[1]
    return {
        "LongAnimRepeatMaskNoise": (dict(seed=3, ratio=0.5, context_length=5), _noise),
        "LongAnimFreeNoiseShuffle": (dict(seed=3, context_length=6, stride=2), _noise),
        "LongAnimVideoMetrics": (dict(images=video, context_length=5, mawe_max_side=0), _tensors),
        "LongAnimRandomizedBlendRefine": (dict(
            model=wan, positive=host.cond("a cat", "wan21"), negative=host.cond("", "wan21"), latent=low,
            denoise=0.6, steps=3, cfg=1.0, sampler_name="euler", scheduler="normal", context_length=17,
            context_overlap=9, seed=4, mode="randomized_blend", frame_unit="video frames"), _tensors),
        "LongAnimAttentionExpansion": (dict(model=wan, context_length=4, stride=2),
                                       lambda out: _sample_wan(host, out)),
        "LongAnimZoLAWindows": (dict(model=sd, context_length=5, stride=3, max_skip=2, fuse_method="zola", seed=1,
                                     retain_first_frame=True, frame_unit="video frames"),
                                lambda out: _sample_sd(host, out)),
        "LongAnimWanZoLAWindows": (dict(model=wan, context_length=13, stride=9, max_skip=1, fuse_method="flat",
                                        seed=1, retain_first_frame=True), lambda out: _sample_wan(host, out)),
        "LongAnimGenLWindows": (dict(model=sd, context_length=6, stride=3, fuse_method="randomized_blend", seed=2,
                                     retain_first_frame=True, frame_unit="video frames"),
                                lambda out: _sample_sd(host, out)),
        "LongAnimContextWindows": (dict(model=sd, context_schedule="static", context_length=6, stride=3,
                                        context_overlap=3, max_skip=1, closed_loop=False, seed=1,
                                        fuse_method="pyramid", retain_first_frame=True, frame_unit="video frames"),
                                   lambda out: _sample_sd(host, out)),
        "LongAnimPreviewSchedule": (dict(length=20, steps=4, context_schedule="shifted", context_length=6,
                                         stride=3, context_overlap=2, max_skip=1, closed_loop=False, seed=1,
                                         fuse_method="randomized_blend"), _tensors),
        # 81 video frames (not the default 64): '41-' ends at latent frame 20
        "LongAnimPromptSchedule": (dict(clip=_Clip(host), schedule="0-40: a cat\n41-: a dog", length=81,
                                        frame_unit="video frames (Wan, HunyuanVideo: 4n+1)"), _tensors),
        "LongAnimNoisePreview": (dict(recipe=progressive, seed=1, length=24), _tensors),
        "LongAnimConditioningFrames": (dict(conditioning=host.cond("a cat", "wan21"), start_frame=5, end_frame=9,
                                            frame_unit="video frames"), _tensors),
        "LongAnimWindowLoRA": (dict(model=wan, lora_name=tiny_lora.WAN, strength=0.8, frame_intervals="5-",
                                    frame_unit="video frames"), lambda out: _sample_wan(host, out)),
        # 5 steps of the normal schedule (uniform in the model's time), range [0.1, 0.3): step 1 both as a share
        # of the steps (the retired start / end) and by noise level (start_percent / end_percent); a Karras
        # schedule tells them apart: test_retired_noise_travel_keeps_its_steps_the_new_one_reads_noise_levels
        "LongAnimNoiseTravel": (dict(sampler=comfy.samplers.sampler_object("euler"), jump=1, start_percent=0.1,
                                     end_percent=0.3, repeats=1, seed=3),
                                lambda out: host.custom_advanced(wan, host.wan_latent(9), Noise_RandomNoise(2),
                                                                 sampler=out[0], steps=5)),
        "LongAnimNoiseTravelModel": (dict(model=sd, jump=1, start_percent=0.1, end_percent=0.3, repeats=1, seed=3),
                                     lambda out: host.ksample(out[0], host.sd_latent(4), seed=5, steps=5, cfg=1.0)),
    }


def test_cases_cover_every_renamed_node(host):
    assert set(_cases(host)) == set(vocabulary.RENAMED_NODES)


@pytest.mark.parametrize("old_id", sorted(vocabulary.RENAMED_NODES))
def test_prompt_saved_with_old_id_and_names_gives_the_same_output(host, old_id):
    tiny_lora.ensure(pathlib.Path(folder_paths.base_path))
    kwargs, measure = _cases(host)[old_id]
    new_id = vocabulary.RENAMED_NODES[old_id][0]
    new = measure(getattr(NODE_CLASS_MAPPINGS[new_id](), NODE_CLASS_MAPPINGS[new_id].FUNCTION)(**kwargs))
    old = measure(getattr(NODE_CLASS_MAPPINGS[old_id](), NODE_CLASS_MAPPINGS[old_id].FUNCTION)(
        **old_kwargs(old_id, kwargs)))
    new, old = (v if isinstance(v, list) else [v] for v in (new, old))
    assert len(new) == len(old)
    for a, b in zip(new, old):
        if isinstance(a, torch.Tensor):
            assert a.shape == b.shape and torch.equal(a, b), old_id
        else:
            assert a == b, old_id


def test_errors_name_the_inputs_as_the_node_shows_them(host):
    """A refusal names the input by the name on the node the user has: the old name on a retired id."""
    kwargs = dict(model=host.wan(), context_schedule="looped", context_length=6, stride=4, context_overlap=2,
                  max_skip=1, closed_loop=True, seed=0, fuse_method="flat", retain_first_frame=True)
    with pytest.raises(ValueError, match=r"^retain_first_frame: ") as new:
        NODE_CLASS_MAPPINGS["LongAnimContextWindowsV2"]().run(**kwargs)
    with pytest.raises(ValueError, match=r"^keep_first_frame: ") as old:
        NODE_CLASS_MAPPINGS["LongAnimContextWindows"]().run(**old_kwargs("LongAnimContextWindows", kwargs))
    assert "retain_first_frame" not in str(old.value) and "keep_first_frame" not in str(new.value)


def test_retired_noise_travel_keeps_its_steps_the_new_one_reads_noise_levels(host):
    """The retired ids' start / end are a share of the steps; start_percent / end_percent are noise levels (core's
    percent_to_sigma). On a Karras schedule (more steps at low noise) the same numbers select other steps: the
    alias keeps the saved workflow's steps, the new node takes the steps whose noise level is in the range."""
    from longanim.nodes.algorithms import noise_travel as nt
    from longanim.nodes.comfy import travel as ct

    ms = host.sd15().get_model_object("model_sampling")
    sigmas = comfy.samplers.calculate_sigmas(ms, "karras", 10).cpu()
    euler = comfy.samplers.sampler_object("euler")
    old = NODE_CLASS_MAPPINGS["LongAnimNoiseTravel"]().run(sampler=euler, jump=1, start=0.1, end=0.5, repeats=1,
                                                           seed=3)[0].settings.for_run(sigmas, ms)
    new = NODE_CLASS_MAPPINGS["LongAnimNoiseTravelV2"]().run(sampler=euler, jump=1, start_percent=0.1,
                                                             end_percent=0.5, repeats=1, seed=3)[0]
    assert old.plan(10) == nt.travel_plan(10, 1, 0.1, 0.5, 1), "the saved share of the steps: steps 1-4"
    first, stop = ct.percent_range_steps(sigmas, ms, 0.1, 0.5)
    assert (first, stop) != (1, 5), "Karras: that part of the noise schedule is not those steps"
    hi, lo = ms.percent_to_sigma(0.1), ms.percent_to_sigma(0.5)
    assert all(lo < float(sigmas[i]) <= hi for i in range(first, stop))
    assert float(sigmas[first - 1]) > hi and float(sigmas[stop]) <= lo
    assert new.settings.for_run(sigmas, ms).plan(10) == nt.travel_plan(10, 1, first / 10, stop / 10, 1)
    model = host.sd15()
    latent = host.sd_latent(4)
    out_old = host.ksample(NODE_CLASS_MAPPINGS["LongAnimNoiseTravelModel"]().run(
        model=model, jump=1, start=0.1, end=0.5, repeats=1, seed=3)[0], latent, seed=5, steps=10, cfg=1.0,
        scheduler="karras")
    out_new = host.ksample(NODE_CLASS_MAPPINGS["LongAnimNoiseTravelModelV2"]().run(
        model=model, jump=1, start_percent=0.1, end_percent=0.5, repeats=1, seed=3)[0], latent, seed=5, steps=10,
        cfg=1.0, scheduler="karras")
    assert not torch.equal(out_old, out_new), "other steps travel, so the outputs differ"
