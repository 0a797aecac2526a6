"""The domain layer: what transcripts and their analysis are (records, analysis results, reply
links, storage keys, billing, timestamps), as plain objects and pure functions. No I/O, no
SQL, no gRPC; every other layer builds on it."""
