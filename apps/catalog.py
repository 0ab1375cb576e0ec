"""Every app servestack ships, by name: the default specs a stack's overrides start from."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from apps.classifier.spec import CLASSIFIER
from apps.embeddings.spec import EMBEDDINGS
from apps.search.spec import SEARCH
from apps.spec import ApplicationSpec

CATALOG: Mapping[str, ApplicationSpec] = MappingProxyType(
    {spec.name: spec for spec in (EMBEDDINGS, CLASSIFIER, SEARCH)}
)
