"""`make eval`: threadline's accuracy figures on real transcripts (../shared/corpus)."""
