"""The trainer and data preparation for Qwen3-TTS fine-tuning (torch + qwen_tts).

Runs as its own process (`milo-train`), never inside the dashboard.
"""
