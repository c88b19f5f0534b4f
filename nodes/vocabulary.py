"""The pack's input vocabulary: the node ids and input names renamed so one idea has one name (docs/vocabulary.md).

One table, ``RENAMED_NODES``: retired node id -> (its replacement's id, {old input name: current name}). A node
whose inputs are renamed gets a new id (saved workflows address inputs by name, so the old id must keep its old
names): the old id plus ``V2`` (a later rename of the same node: ``V3``, ...), the display name unchanged. The old id
stays registered through :func:`alias` (``base.deprecated_alias``: hidden from search, loads and runs saved
workflows with their values). Every input of a node is renamed in one step, so each node changes id at most once.

Names used (core ComfyUI's where core has one with the same meaning):
``context_length`` frames in one window (or the model's native length), ``context_overlap`` frames shared by
neighbouring windows, ``fuse_method`` how overlapping windows merge, ``retain_first_frame`` the reference frame in
every window, ``frame_unit`` the unit of every length and frame number a node takes, ``length`` the frames of the
whole video, ``start_percent`` / ``end_percent`` a range of the sampling run.
"""
from __future__ import annotations

from .base import deprecated_alias

RENAMED_NODES: dict[str, tuple[str, dict[str, str]]] = {
    "LongAnimRepeatMaskNoise": ("LongAnimRepeatMaskNoiseV2", {"base_length": "context_length"}),
    "LongAnimFreeNoiseShuffle": ("LongAnimFreeNoiseShuffleV2", {"window_length": "context_length"}),
    "LongAnimVideoMetrics": ("LongAnimVideoMetricsV2", {"window_length": "context_length"}),
    "LongAnimRandomizedBlendRefine": ("LongAnimRandomizedBlendRefineV2", {
        "chunk_length": "context_length", "overlap": "context_overlap", "length_unit": "frame_unit"}),
    "LongAnimAttentionExpansion": ("LongAnimAttentionExpansionV2", {"base_length": "context_length"}),
    "LongAnimZoLAWindows": ("LongAnimZoLAWindowsV2", {
        "fusion": "fuse_method", "keep_first_frame": "retain_first_frame", "length_unit": "frame_unit"}),
    "LongAnimWanZoLAWindows": ("LongAnimWanZoLAWindowsV2", {
        "fusion": "fuse_method", "keep_first_frame": "retain_first_frame"}),
    "LongAnimGenLWindows": ("LongAnimGenLWindowsV2", {
        "fusion": "fuse_method", "keep_first_frame": "retain_first_frame", "length_unit": "frame_unit"}),
    "LongAnimContextWindows": ("LongAnimContextWindowsV2", {
        "overlap": "context_overlap", "fusion": "fuse_method", "keep_first_frame": "retain_first_frame",
        "length_unit": "frame_unit"}),
    "LongAnimPreviewSchedule": ("LongAnimPreviewScheduleV2", {
        "frames": "length", "overlap": "context_overlap", "fusion": "fuse_method"}),
    "LongAnimPromptSchedule": ("LongAnimPromptScheduleV2", {"frames": "length"}),
    "LongAnimNoisePreview": ("LongAnimNoisePreviewV2", {"frames": "length"}),
    "LongAnimConditioningFrames": ("LongAnimConditioningFramesV2", {"length_unit": "frame_unit"}),
    "LongAnimWindowLoRA": ("LongAnimWindowLoRAV2", {"length_unit": "frame_unit"}),
    "LongAnimNoiseTravel": ("LongAnimNoiseTravelV2", {"start": "start_percent", "end": "end_percent"}),
    "LongAnimNoiseTravelModel": ("LongAnimNoiseTravelModelV2", {"start": "start_percent", "end": "end_percent"}),
}

#: current node id -> the retired id it replaces
REPLACES = {new: old for old, (new, _) in RENAMED_NODES.items()}


def alias(target: type, **extra) -> type:
    """The deprecated alias of the retired id that ``target`` replaces, with that id's renamed inputs
    (``extra``: ``old_inputs`` / ``convert`` / ``note`` of ``base.deprecated_alias``)."""
    old_id = REPLACES[target.NODE_ID]
    return deprecated_alias(old_id, target, RENAMED_NODES[old_id][1], **extra)


def current_name(node_id: str, name: str) -> str:
    """The current name of input ``name`` of node ``node_id`` (a retired id's old name maps to its new one)."""
    return RENAMED_NODES.get(node_id, ("", {}))[1].get(name, name)
