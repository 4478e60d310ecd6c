"""When a take ends by itself: after `silence_s` of quiet that follows speech. What counts as quiet is
calibrated from the session's room tone: a block is speech when its RMS stands `margin_db` above the room's
(and above `floor_dbfs`, for a room of digital silence). Pure: fed the level blocks as they come."""
from __future__ import annotations


class AutoStop:
    def __init__(self, room_rms_dbfs: float | None, silence_s: float = 0.7, margin_db: float = 12.0,
                 floor_dbfs: float = -50.0, min_speech_s: float = 0.15) -> None:
        self.threshold = max((room_rms_dbfs if room_rms_dbfs is not None else -120.0) + margin_db, floor_dbfs)
        self.silence_s, self.min_speech_s = silence_s, min_speech_s
        self.speech_s = 0.0
        self.last_loud: float | None = None
        self._prev_t = 0.0

    @property
    def heard(self) -> bool:
        return self.speech_s >= self.min_speech_s

    def feed(self, t: float, rms_dbfs: float) -> bool:
        """One level block ending at `t` seconds into the take; True once the take should stop."""
        dt, self._prev_t = max(t - self._prev_t, 0.0), t
        if rms_dbfs >= self.threshold:
            self.speech_s += dt
            self.last_loud = t
        return self.heard and self.last_loud is not None and t - self.last_loud >= self.silence_s
