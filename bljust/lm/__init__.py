"""Language models for decoding: n-gram estimation (interpolated modified Kneser-Ney) with ARPA output."""
