"""Keeps HLF's public chapter website honest about which peer mentors are available."""
