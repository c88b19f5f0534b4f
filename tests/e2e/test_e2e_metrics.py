"""e2e: sample a long SD video with LongAnim windows, decode it, and measure it with the Video Metrics node."""
from comfy_client import Graph, execution_error


def test_metrics_node_after_windowed_sampling(server):
    g = Graph()
    model, vae, pos, neg = g.tiny_model("sd15")
    model = g.out(g.node("LongAnimZoLAWindows", model=model, context_length=8, stride=6, max_skip=2,
                         fusion="zola", seed=0))
    latent = g.node("EmptyLatentImage", width=32, height=32, batch_size=16)
    sampled, images = g.ksample_decode(model, pos, neg, g.out(latent), vae, seed=3, steps=2)
    metrics = g.node("LongAnimVideoMetrics", images=g.out(images), latent=g.out(sampled), window_length=8,
                     mawe_max_side=64)
    g.node("PreviewImage", images=g.out(metrics, 5))
    report = g.node("PreviewAny", source=g.out(metrics, 4))
    g.node("PreviewAny", source=g.out(metrics, 2))
    entry = server.run(g.prompt())
    assert execution_error(entry) is None, execution_error(entry)
    outputs = entry["outputs"]
    assert any(out.get("images") for out in outputs.values()), "the plot was not previewed"
    text = "".join(outputs[report]["text"])
    assert "seam_ratio:" in text and "mawe:" in text and "scene_cuts:" in text and "Measured on: IMAGE" in text
    # borders of the run's own last step (the window loop filed them under the KSampler's output), not window_length
    assert "recorded by the LongAnim window loop" in text, text


def test_metrics_node_error_without_inputs(server):
    g = Graph()
    metrics = g.node("LongAnimVideoMetrics", window_length=0, mawe_max_side=0)
    g.node("PreviewAny", source=g.out(metrics, 4))
    entry = server.run(g.prompt())
    err = execution_error(entry)
    assert err is not None and err["node_type"] == "LongAnimVideoMetrics"
    assert "images / latent" in err["exception_message"]
