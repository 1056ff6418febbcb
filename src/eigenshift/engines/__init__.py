"""Generation engines other than our own loop (`generation.generate`)."""
