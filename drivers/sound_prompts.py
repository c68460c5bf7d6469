"""The sounds the flow may ask for: the prompt names and the buzzer's tone patterns.

In a module of their own so that every player (buzzer, ALSA clips, recorder) checks a
name against one list without importing the module that chooses the player.
"""
from __future__ import annotations

# What the flow asks to be said, and when (docs/sound.md): the contract's names (apis.md §1c).
PROMPTS = ("invite", "choose_reason", "thanks", "paused", "swipe_card", "not_found", "error")

# (frequency in Hz or None for a rest, seconds). An active buzzer ignores the
# frequency and just sounds. Tones stay within TonalBuzzer's A5 +- 1 octave.
PATTERNS: dict[str, tuple[tuple[float | None, float], ...]] = {
    "invite": ((880.0, 0.08), (None, 0.06), (1175.0, 0.12)),
    "press": ((1760.0, 0.04),),
    "thanks": ((1047.0, 0.09), (1319.0, 0.09), (1568.0, 0.16)),
    "error": ((440.0, 0.25), (None, 0.10), (440.0, 0.25)),
    "choose_reason": ((1175.0, 0.08), (None, 0.06), (880.0, 0.12)),
    "paused": ((659.0, 0.20),),
    "swipe_card": ((880.0, 0.06), (None, 0.05), (880.0, 0.06)),
    "not_found": ((659.0, 0.12), (None, 0.06), (523.0, 0.20)),
}


def check_prompt(name: str) -> None:
    """ValueError for a name that is neither a prompt nor the key click."""
    if name not in PATTERNS:
        raise ValueError(f"unknown sound {name!r}; known: " + ", ".join(PATTERNS))
