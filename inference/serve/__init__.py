"""milo-serve: the chosen voice as an OpenAI-compatible streaming speech server (docs/serving.md)."""
