"""Where model weights come from: one URI syntax and one per-node cache for every app.

`uri` judges a URI from its text alone (the config layer's check, no client imports);
`fetch` resolves s3://, gs:// and mlflow:// with the ecosystem's clients; `cache` keeps
what was fetched on the node, content-addressed, locked, verified and bounded; `resolve`
turns any model URI into a verified local path.
"""
