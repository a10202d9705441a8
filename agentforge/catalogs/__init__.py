"""Catalog formats other tools use (plugin marketplaces, agent skills, Copilot files, MCP
``server.json``), read into the same records as the native reader. See :mod:`.read`."""

from agentforge.catalogs.files import component_checksum_at, component_files, component_tree, export_component
from agentforge.catalogs.names import NAMESPACE_SEPARATOR, namespaced, normalise_name
from agentforge.catalogs.read import FORMATS, CatalogMirror, detect_format, external_sources, read_catalog_snapshot
from agentforge.catalogs.versions import (
    apply_release_tags,
    catalog_version_from_tag,
    coerce_version,
    pseudo_version,
    release_version_for,
    tag_applies_to,
)
from agentforge.core.frontmatter import Markdown, parse_markdown

__all__ = [
    "FORMATS",
    "NAMESPACE_SEPARATOR",
    "CatalogMirror",
    "Markdown",
    "apply_release_tags",
    "catalog_version_from_tag",
    "coerce_version",
    "component_checksum_at",
    "component_files",
    "component_tree",
    "detect_format",
    "export_component",
    "external_sources",
    "namespaced",
    "normalise_name",
    "parse_markdown",
    "pseudo_version",
    "read_catalog_snapshot",
    "release_version_for",
    "tag_applies_to",
]
