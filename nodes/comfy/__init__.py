"""The ComfyUI boundary: the only package of LongAnim that imports ComfyUI.

Node modules (``nodes/*.py``) call into it; it calls the pure algorithms (``nodes/algorithms/``). One module per
concern, each naming at its top what it owns and which core hooks it uses:

=====================  ==============================================================================================
``basics``             cancel, progress, the latent's frame axis, the per-run state, model family, percent -> sigma
``noise``              the NOISE object, the KSampler initial-noise wrapper, KSampler-identical seeded draws
``window_options``     the window loop's options and the picture of their schedule (pure; shared with the route)
``windows``            the window loop: LongAnim's context handler and the wrappers that set a run up
``window_conds``       one window's conditioning: window view, per-frame conds, hints, reference frame, guides
``animatediff``        the AnimateDiff-Evolved bridge (duck-typed; LongAnim's windows drive ADE's motion module)
``unet_attention``     ZS² momentum / Gen-L cross-frame attention as a UNet ``attn1_patch``
``wan_attention``      ZoLA attention expansion / FreeLong blend as the video DiTs' ``optimized_attention_override``
``motion_attention``   attention expansion / FreeLong blend in AnimateDiff-Evolved's temporal attention (duck-typed)
``dit_attention``      where the video tokens sit in Wan / LTX-Video / HunyuanVideo attention (token layout wrappers)
``travel``             noise travel (ZoLA Eq. 9) as a KSAMPLER and as a ``SAMPLER_SAMPLE`` wrapper
``refine``             randomized-blend refinement (StreamingT2V) through core's KSampler
``phased``             phased inference (CLIA) through core's CFGGuider
``adapters``           Window LoRA: per-window adapter strengths (ZoLA sec. 4.5)
``inversion``          long-video inversion (Gen-L-Video) through core's CFGGuider
``routes``             the server route of the canvas schedule preview
=====================  ==============================================================================================

Nothing is imported here, so importing one module does not load the others. Keys the pack writes into
``model_options`` / ``transformer_options`` and wrapper keys are namespaced ``LongAnim.*``.
"""
