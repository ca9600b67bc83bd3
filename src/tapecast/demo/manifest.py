"""The demo folder's manifest: which steps finished, keyed by a hash of their inputs.

``DIR/demo.json`` holds one entry per finished step (``data``, ``features``,
``throughput/train``, ``throughput/sample``, ``train/<model>``, ``forecast/<name>``,
``report``): the SHA-256 of the step's inputs and options, and what the step reported. A re-run
skips a step whose entry has the same key and whose outputs exist; any change of input or
option changes the key and the step runs again. The file is rewritten atomically after every
step, so Ctrl-C between two steps (or inside one) leaves a manifest that names only finished
work.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tapecast.core.errors import TapecastError
from tapecast.core.io import atomic_write_text

MANIFEST_FILE = "demo.json"
FORMAT_VERSION = 1
KIND = "tapecast.demo"


def input_key(*parts: Any) -> str:
    """SHA-256 (hex, first 16 characters) of ``parts`` as canonical JSON."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class Manifest:
    """The steps finished in a demo folder (see the module docstring).

    Attributes
    ----------
    folder : Path
    steps : dict of str -> dict
        ``{"key": ..., "info": {...}}`` per finished step.
    """

    folder: Path
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST_FILE

    @classmethod
    def open(cls, folder: Path) -> Manifest:
        """The folder's manifest, or an empty one when there is none yet."""
        path = folder / MANIFEST_FILE
        if not path.is_file():
            return cls(folder)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TapecastError(f"{path}: not valid JSON ({exc}); re-run with --fresh") from None
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise TapecastError(f"{path}: not a tapecast demo manifest; re-run with --fresh")
        if data.get("format_version") != FORMAT_VERSION:
            return cls(folder)  # an older layout: everything is redone
        return cls(folder, {str(k): dict(v) for k, v in dict(data.get("steps", {})).items()})

    def done(self, step: str, key: str) -> dict[str, Any] | None:
        """The step's info when it finished with this key, else None."""
        entry = self.steps.get(step)
        if entry is None or entry.get("key") != key:
            return None
        return dict(entry.get("info") or {})

    def mark(self, step: str, key: str, info: Mapping[str, Any] | None = None) -> None:
        """Record a finished step and rewrite the manifest atomically."""
        self.steps[step] = {"key": key, "info": dict(info or {})}
        self.save()

    def forget(self, step: str) -> None:
        """Drop a step (it will run again)."""
        if self.steps.pop(step, None) is not None:
            self.save()

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"kind": KIND, "format_version": FORMAT_VERSION, "steps": self.steps},
                          indent=1, sort_keys=True, default=str)
        atomic_write_text(self.path, text + "\n")
