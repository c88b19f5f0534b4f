"""One source of window defaults: the nodes, WindowOptions, make_windows and the preview route agree.

Every layer reads ``context_schedule.WINDOW_DEFAULTS`` (Gen-L: ``GENL_DEFAULTS``); this test builds the options each
window node makes from its own input defaults and compares them with the options of the other layers, so a default
typed as a literal in one layer and changed in another fails here.
"""
import dataclasses
import inspect

import pytest
from longanim.nodes import window_nodes as wn
from longanim.nodes.algorithms import context_schedule as cs
from longanim.nodes.comfy import routes
from longanim.nodes.comfy import window_options as cwo

NODE_TABLE = {
    "LongAnimZoLAWindowsV2": cs.ZOLA_DEFAULTS,
    "LongAnimWanZoLAWindowsV2": {**cs.ZOLA_DEFAULTS, "length": 21, "stride": 16},  # 81 / 61 video frames
    "LongAnimContextWindowsV2": cs.WINDOW_DEFAULTS,
    "LongAnimGenLWindowsV2": cs.GENL_DEFAULTS,
}


def _defaults(cls) -> dict:
    spec = cls.INPUT_TYPES()
    return {name: entry[1]["default"] for section in spec.values() for name, entry in section.items()
            if len(entry) > 1 and "default" in entry[1]}


def _node_options(cls, monkeypatch) -> cwo.WindowOptions:
    monkeypatch.setattr(wn.cw, "patch_model_windows", lambda model, options: options)
    monkeypatch.setattr(wn.cb, "mark_patch", lambda model, role, node: model)  # the options stand in for a MODEL
    monkeypatch.setattr(wn.cb, "temporal_compression", lambda model: 4)  # a Wan model's, for the Wan node
    return cls().run(model=object(), **_defaults(cls))[0]


def _shown(opts: cwo.WindowOptions, table) -> dict:
    """The options a node's defaults set (schedule-specific neutral values aside), as in the table."""
    got = {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts) if f.name != "extra"}
    return {k: got[k] for k in table if k in got}


@pytest.mark.parametrize("node", sorted(NODE_TABLE))
def test_each_window_node_makes_the_table_defaults(node, monkeypatch):
    cls = getattr(wn, node)
    table = dict(NODE_TABLE[node])
    opts = _node_options(cls, monkeypatch)
    if node == "LongAnimGenLWindowsV2":  # Gen-L has no ends / max_skip / overlap input: WindowOptions' own apply
        table.update(ends=cwo.WindowOptions().ends, max_skip=cwo.WindowOptions().max_skip,
                     overlap=cwo.WindowOptions().overlap)
    assert _shown(opts, table) == table


def test_window_options_and_make_windows_default_to_the_table():
    opts = cwo.WindowOptions()
    assert {k: getattr(opts, k) for k in cs.WINDOW_DEFAULTS} == dict(cs.WINDOW_DEFAULTS)
    assert inspect.signature(cs.make_windows).parameters["ends"].default == cs.WINDOW_DEFAULTS["ends"]
    assert cs.WINDOW_DEFAULTS["ends"] == "truncate" and cs.WINDOW_DEFAULTS["max_batch"] == 0


@pytest.mark.parametrize("node", sorted(NODE_TABLE))
def test_the_preview_route_falls_back_to_the_node_defaults(node, monkeypatch):
    """A query without values previews what the node with its default widgets samples."""
    opts, frames, steps, seed = routes.preview_request({"node": node})
    want = _node_options(getattr(wn, node), monkeypatch)
    assert opts.schedule == want.schedule and opts._params() == want._params()
    assert (opts.fusion, opts.ends, opts.skip_until, opts.seed) == (want.fusion, want.ends, want.skip_until, want.seed)
    assert opts.window_align() == want.window_align()  # the scene noise's chunk grid
    assert steps == cs.PREVIEW_DEFAULTS["steps"] and seed == 0


def test_preview_schedule_node_defaults_are_the_table(monkeypatch):
    d = _defaults(wn.LongAnimPreviewScheduleV2)
    assert (d["length"], d["steps"]) == (cs.PREVIEW_DEFAULTS["frames"], cs.PREVIEW_DEFAULTS["steps"])
    assert {k: d[k] for k in ("context_length", "stride", "context_overlap", "max_skip", "fuse_method", "ends")} == {
        "context_length": cs.WINDOW_DEFAULTS["length"], "context_overlap": cs.WINDOW_DEFAULTS["overlap"],
        "fuse_method": cs.WINDOW_DEFAULTS["fusion"], **{k: cs.WINDOW_DEFAULTS[k] for k in
                                                       ("stride", "max_skip", "ends")}}
