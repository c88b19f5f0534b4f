"""LongAnim nodes. Deliberately empty: keeps ``nodes.algorithms`` importable without ComfyUI."""
