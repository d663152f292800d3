"""Run directories named by the hash of their configuration, with resumable steps.

As in open_lth's ``Desc``: the SHA-256 of a canonical JSON of everything that determines
a run names its directory (``<label>-<16 hex digits>`` under the runs root), so the same
configuration always lands in the same place and a different one never collides. A run
is a sequence of named steps (``train``, ``level-3``, ``finetune``, ...); each finished
step is one checkpoint file written atomically (model state, masks, per-epoch history,
notes) and is loaded instead of recomputed on the next run, so a crashed run resumes
after its last finished step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prunemip.atomic import atomic_write, atomic_write_lines
from prunemip.errors import PrunemipError
from prunemip.keys import content_key


@dataclass
class Checkpoint:
    """One finished step: model parameters, masks, per-epoch history and notes."""

    model: dict[str, torch.Tensor]
    masks: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


class RunDir:
    """The directory of one configuration and its finished steps."""

    def __init__(self, root: str | Path, key: Any, label: str, description: Any = None) -> None:
        self.hash = content_key(key)
        self.path = Path(root) / f"{label}-{self.hash}"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise PrunemipError(f"cannot create run directory {self.path}: {error.strerror}") from None
        if not (self.path / "config.json").exists():
            payload = {"hash": self.hash, "key": key, "config": description}
            self.write_json("config.json", payload)

    def step_file(self, step: str) -> Path:
        """The checkpoint file of ``step``.

        Args:
            step: the step's name.

        Returns:
            ``<run directory>/<step>.pt``.
        """
        return self.path / f"{step}.pt"

    def done(self, step: str) -> bool:
        """Whether ``step`` has finished (its checkpoint exists).

        Args:
            step: the step's name.

        Returns:
            ``True`` when its checkpoint file exists.
        """
        return self.step_file(step).is_file()

    def save(self, step: str, checkpoint: Checkpoint) -> None:
        """Write ``step``'s checkpoint atomically (tensors moved to the CPU).

        Args:
            step: the step's name.
            checkpoint: the model state, masks, history and notes.

        Raises:
            PrunemipError: when the file cannot be written.
        """
        payload = {
            "model": {k: v.detach().cpu() for k, v in checkpoint.model.items()},
            "masks": checkpoint.masks,
            "history": checkpoint.history,
            "notes": checkpoint.notes,
        }
        atomic_write(self.step_file(step), lambda handle: torch.save(payload, handle))

    def load(self, step: str) -> Checkpoint:
        """Read ``step``'s checkpoint (``weights_only``, on the CPU).

        Args:
            step: the step's name.

        Returns:
            The checkpoint.

        Raises:
            PrunemipError: when the file is unreadable (delete it to redo the step).
        """
        path = self.step_file(step)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            return Checkpoint(payload["model"], payload["masks"], payload["history"], payload["notes"])
        except Exception as error:
            raise PrunemipError(
                f"{path} is unreadable ({type(error).__name__}); delete it to redo that step"
            ) from None

    def write_json(self, name: str, payload: Any) -> Path:
        """Write ``payload`` as indented JSON into the run directory, atomically.

        Args:
            name: the file name.
            payload: a JSON-like value (others by ``str``).

        Returns:
            The file's path.
        """
        return atomic_write_lines(self.path / name, [json.dumps(payload, indent=2, default=str)])
