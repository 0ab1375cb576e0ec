"""The README's worked example is the real Serve config entry, not a hand-kept copy."""

from __future__ import annotations

import yaml

from apps.embeddings.spec import EMBEDDINGS
from infra.config import REPO_ROOT
from infra.serve_config import application_entry, worker_group_selectors

EXAMPLE_START = "```yaml\napplications:\n- name: embeddings"


def test_worked_example_yaml_is_what_the_builder_emits_for_the_embeddings_app() -> None:
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index(EXAMPLE_START) + len("```yaml\n")
    example = yaml.safe_load(text[start : text.index("```", start)])
    selectors = worker_group_selectors([EMBEDDINGS])
    assert example["applications"] == [application_entry(EMBEDDINGS, selectors)], (
        "README's worked example drifted from apps/embeddings/spec.py; update the YAML block"
    )
