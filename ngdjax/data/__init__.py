"""Monocular sequences: the one on-disk format (docs/sequence_format.md), its validation, loaders."""
