"""A fake of the few docker SDK image calls ``crucible.sandbox.envbuild.ensure_env`` makes (``images.get``/``list``),
for unit tests of the env build path without an engine; builds are stubbed by the test."""

from __future__ import annotations

from dataclasses import dataclass, field


class ImageNotFound(Exception):
    pass


@dataclass
class FakeImage:
    tags: list
    labels: dict
    id: str = "sha256:0"
    attrs: dict = field(default_factory=dict)


class _Images:
    def __init__(self, images: list[FakeImage]):
        self._images = images

    def get(self, name: str) -> FakeImage:
        import docker

        for img in self._images:
            if name in img.tags or name == img.id:
                return img
        raise docker.errors.ImageNotFound(name)

    def list(self, filters: dict | None = None) -> list[FakeImage]:
        wanted = (filters or {}).get("label") or []
        wanted = [wanted] if isinstance(wanted, str) else wanted

        def match(img: FakeImage) -> bool:
            for w in wanted:
                k, eq, v = w.partition("=")
                if k not in img.labels or (eq and img.labels[k] != v):
                    return False
            return True

        return [img for img in self._images if match(img)]


class FakeDockerClient:
    def __init__(self, images: list[FakeImage]):
        self.images = _Images(images)
