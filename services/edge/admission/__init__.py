"""Admission at the edge: every limit of a key checked and reserved in one Redis round trip, settled
to the real usage when the request ends. See docs/keys-and-plans.md for the model and its guarantees."""
