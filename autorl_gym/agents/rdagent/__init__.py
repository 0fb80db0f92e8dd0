"""rdagent: the reference R&D loop (hypothesis -> implement -> run -> submit -> feedback)."""
