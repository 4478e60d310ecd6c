"""The audition engine: loads Qwen3-TTS checkpoints and synthesizes speech (torch + qwen_tts).

Runs in its own processes (the audition worker, `milo-say`), never inside the dashboard.
"""
