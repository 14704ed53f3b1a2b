"""The registry state machine's invariants (components/common/registry.py), checked on a real
MLflow store by the registry tests and the concurrency tests alike."""

from typing import Any

from components.common import registry
from components.common.registry import CHALLENGER, CHAMPION, PREVIOUS


def assert_invariants(client: Any, name: str) -> dict[str, str]:
    """Champion exists and is not rejected, differs from previous, no rejected version holds an
    alias, no move left half done, every status tag derived from the aliases."""
    held = registry.held_aliases(client, name)
    assert CHAMPION in held
    champion = client.get_model_version(name, held[CHAMPION])
    assert not registry.is_rejected(champion)
    assert held.get(PREVIOUS) != held[CHAMPION]
    assert held.get(CHALLENGER) != held[CHAMPION]
    assert registry.MOVE_TAG not in (client.get_registered_model(name).tags or {})
    by_version: dict[str, list[str]] = {}
    for alias, v in held.items():
        by_version.setdefault(v, []).append(alias)
    for mv in client.search_model_versions(f"name = '{name}'"):
        tags, aliases = mv.tags or {}, by_version.get(str(mv.version), [])
        if registry.is_rejected(mv):
            assert aliases == [], f"rejected version {mv.version} holds {aliases}"
        assert tags.get(registry.STATUS_TAG) == registry.derived_status(tags, aliases)
    return held
