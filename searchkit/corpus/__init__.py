"""Texts in: the built-in Python docs, BEIR data sets, your own files, passages of long documents, synthetic vectors."""
