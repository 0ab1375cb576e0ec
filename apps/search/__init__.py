"""Model composition: a FastAPI ingress over an embedder and an in-memory vector index."""
