"""The catalogue of servable model versions and aliases: what requests are resolved against.

It is an in-memory snapshot of the database's catalogue (:mod:`modelhost.db.catalog`), replaced
whole by :mod:`modelhost.catalog.sync` (at start, every few seconds, and after a change made
through this replica), so resolving a name never touches the database or the disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelhost.errors import ModelNotFound, Unavailable, VersionNotFound
from modelhost.manifest import Manifest
from modelhost.storage.base import check_model_name


@dataclass(frozen=True, slots=True)
class ModelRef:
    """One servable version of a model: what a lease is taken on."""

    name: str
    version: int
    manifest: Manifest

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.version)

    def __str__(self) -> str:
        return f"{self.name}/{self.version}"


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """A version the registry knows: its manifest, or why it cannot be served."""

    version: int
    manifest: Manifest | None
    error: str | None = None


class ModelCatalog:
    """Model names → versions (each with its manifest) and aliases → versions.

    A per-model deployment (``serves``: the names it serves, ``MODELHOST_MODELS``) holds only
    those models, whatever the registry and the store have: every other name is unknown here,
    and the error says which models this deployment serves.
    """

    def __init__(self, serves: frozenset[str] | None = None) -> None:
        self._serves = serves
        self._models: dict[str, dict[int, VersionRecord]] = {}
        self._aliases: dict[str, dict[str, int]] = {}
        self._refs: dict[str, dict[int, ModelRef]] = {}

    def replace(
        self, models: dict[str, dict[int, VersionRecord]], aliases: dict[str, dict[str, int]]
    ) -> None:
        if self._serves is not None:
            models = {name: rows for name, rows in models.items() if name in self._serves}
            aliases = {name: rows for name, rows in aliases.items() if name in self._serves}
        self._models = models
        self._aliases = aliases
        # Each servable version's ref, made once here rather than on every request.
        self._refs = {
            name: {
                number: ModelRef(name, number, record.manifest)
                for number, record in records.items()
                if record.manifest is not None
            }
            for name, records in models.items()
        }

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._aliases = {**self._aliases, name: {**self._aliases.get(name, {}), alias: version}}

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[VersionRecord]:
        """All versions of ``name``, ascending; raises ModelNotFound."""
        return list(self._records(name).values())

    def aliases(self, name: str) -> dict[str, int]:
        return dict(self._aliases.get(name, {}))

    def all_aliases(self) -> dict[str, dict[str, int]]:
        return self._aliases

    def resolve(self, name: str, version: str | None = None) -> ModelRef:
        """The version a request names, by number or alias (the highest when it names none)."""
        records = self._records(name)
        if version is None or version == "":
            record = records[max(records)]
        else:
            # A version is an int64: more digits than that is no version (and int() refuses
            # strings past 4,300 digits with a ValueError).
            digits = version.isascii() and version.isdigit() and len(version) <= 19
            number = int(version) if digits else None
            if number is None:
                number = self._aliases.get(name, {}).get(version)
            if number is None or number not in records:
                raise VersionNotFound(f"model {name!r} has no version or alias {version!r}")
            record = records[number]
        if record.manifest is None:
            raise Unavailable(
                f"model {name!r} version {record.version} cannot be served: {record.error}"
            )
        return self._refs[name][record.version]

    def _records(self, name: str) -> dict[int, VersionRecord]:
        records = self._models.get(name)
        if not records:
            check_model_name(name)  # a malformed name is a 400, not a 404
            if self._serves is not None and name not in self._serves:
                raise ModelNotFound(
                    f"model {name!r} is not served by this deployment; it serves "
                    f"{', '.join(sorted(self._serves))}"
                )
            raise ModelNotFound(f"unknown model {name!r}")
        return records
