"""Fakes of a registry and of the docker SDK calls :mod:`crucible.sandbox.registry` and :mod:`crucible.sandbox.engines` make
(``ping``, ``images.get/pull/push``, ``Image.tag``), for unit tests of placement, drain and build-once without
an engine. An engine ``down`` answers nothing (every call raises requests' ConnectionError, as a stopped
dockerd's socket does)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import docker
import requests


class FakeRegistry:
    def __init__(self):
        self.blobs: dict[str, str] = {}  # "repo:tag" -> image id
        self.pushes = 0
        self.refuse = False  # a registry that denies pushes
        self.lock = threading.Lock()


@dataclass
class FakeImage:
    client: FakeEngineClient
    id: str
    labels: dict = field(default_factory=dict)

    def tag(self, repository: str, tag: str) -> bool:
        self.client._check()
        self.client.store[f"{repository}:{tag}"] = self
        return True


class _Images:
    def __init__(self, client: FakeEngineClient):
        self.c = client

    def get(self, name: str) -> FakeImage:
        self.c._check()
        if name in self.c.store:
            return self.c.store[name]
        raise docker.errors.ImageNotFound(name)

    def pull(self, repository: str, tag: str | None = None):
        self.c._check()
        ref = f"{repository}:{tag}"
        with self.c.registry.lock:
            image_id = self.c.registry.blobs.get(ref)
        if image_id is None:
            raise docker.errors.NotFound(f"manifest unknown: {ref}")
        self.c.pulls.append(ref)
        img = FakeImage(self.c, image_id)
        self.c.store[ref] = img
        return img

    def remove(self, name: str, noprune: bool = False) -> None:
        self.c._check()
        self.c.store.pop(name, None)

    def get_registry_data(self, name: str):
        self.c._check()
        with self.c.registry.lock:
            if name not in self.c.registry.blobs:
                raise docker.errors.NotFound(f"manifest unknown: {name}")
            return self.c.registry.blobs[name]

    def push(self, repository: str, tag: str | None = None, stream: bool = False, decode: bool = False):
        self.c._check()
        ref = f"{repository}:{tag}"
        if self.c.registry.refuse:
            return iter([{"error": "denied: requested access to the resource is denied"}])
        with self.c.registry.lock:
            self.c.registry.blobs[ref] = self.c.store[ref].id
            self.c.registry.pushes += 1
        return iter([{"status": "Pushed"}])


class FakeEngineClient:
    """One engine: its images by name, the registry it reaches, builds made through :meth:`build`."""

    def __init__(self, name: str, registry: FakeRegistry | None = None):
        self.name, self.registry = name, registry or FakeRegistry()
        self.store: dict[str, FakeImage] = {}
        self.images = _Images(self)
        self.down = False
        self.pulls: list[str] = []
        self.builds: list[str] = []

    def _check(self) -> None:
        if self.down:
            raise requests.exceptions.ConnectionError(f"engine {self.name}: connection refused")

    def ping(self) -> bool:
        self._check()
        return True

    def build(self, image: str) -> dict:
        """What a real build leaves: the image under its name, with an id of its own (a rebuild differs)."""
        self._check()
        self.builds.append(image)
        self.store[image] = FakeImage(self, f"sha256:{self.name}-{image}-{len(self.builds)}")
        return {"image": image, "cache_hit": False}

    def close(self) -> None:
        pass
