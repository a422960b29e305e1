"""Vectors to ids: the Index protocol, the faiss VectorIndex, its files and manifest, sizing, compressed codes,
memory arithmetic, index choice under a budget, incremental builds."""
