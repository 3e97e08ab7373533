"""A BVH motion-capture reader (pure numpy).

``read_bvh(path)`` parses the HIERARCHY (joint names, parents, offsets, channel order per joint;
``End Site`` blocks are skipped: they carry no channels) and the MOTION section (frame count,
frame time, one row of channel values per frame) into a :class:`BVH`.

Conventions (those of the format): a joint's ``CHANNELS`` line lists its channels in the order
they are stored and applied; rotation channels are degrees and compose left to right as intrinsic
rotations, e.g. ``Zrotation Yrotation Xrotation`` gives ``R = Rz(z) @ Ry(y) @ Rx(x)``. A joint's
local transform is a translation by its offset (plus its position channels, if it has any: the
root's) followed by that rotation; the rest pose is all channels zero, where every joint's global
rotation is the identity. Units: whatever the file uses (the shipped CMU clips are in metres).

Bad input (a missing file, a token that does not parse, a frame whose number of values differs
from the channel count, fewer frame rows than ``Frames:`` says) raises
:class:`ngdjax.errors.InputError` with one line naming the file and, where there is one, the line.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from ngdjax.errors import InputError

_ROTATIONS = ("Xrotation", "Yrotation", "Zrotation")
_POSITIONS = ("Xposition", "Yposition", "Zposition")


@dataclasses.dataclass(frozen=True)
class BVH:
    """A parsed BVH file.

    Attributes:
        path: the file read. names: J joint names (no End Sites). parents: (J,) parent index (-1:
        root). offsets: (J, 3) offset from the parent joint. channels: J tuples of channel names
        in file order. frame_time: seconds per frame. values: (F, C) channel values, columns in
        the order the joints and their channels appear.
    """

    path: str
    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    frame_time: float
    values: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def index(self, name: str) -> int:
        return self.names.index(name)

    def _columns(self) -> list[int]:
        starts, column = [], 0
        for chans in self.channels:
            starts.append(column)
            column += len(chans)
        return starts

    def local_rotations(self) -> np.ndarray:
        """Per-frame local rotation matrices (F, J, 3, 3) from each joint's Euler channels in
        their stated order (identity for a joint without rotation channels)."""
        n_frames, n_joints = self.n_frames, len(self.names)
        out = np.broadcast_to(np.eye(3), (n_frames, n_joints, 3, 3)).copy()
        for j, (start, chans) in enumerate(zip(self._columns(), self.channels, strict=True)):
            for c, name in enumerate(chans):
                if name in _ROTATIONS:
                    out[:, j] = out[:, j] @ axis_rotation("XYZ"[_ROTATIONS.index(name)],
                                                          np.radians(self.values[:, start + c]))
        return out

    def local_translations(self) -> np.ndarray:
        """Per-frame local translations (F, J, 3): the offset plus any position channels."""
        out = np.broadcast_to(self.offsets, (self.n_frames, len(self.names), 3)).copy()
        for j, (start, chans) in enumerate(zip(self._columns(), self.channels, strict=True)):
            for c, name in enumerate(chans):
                if name in _POSITIONS:
                    out[:, j, _POSITIONS.index(name)] += self.values[:, start + c]
        return out

    def root_translation(self) -> np.ndarray:
        """The root joint's position per frame (F, 3)."""
        return self.local_translations()[:, 0]

    def global_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Global rotations (F, J, 3, 3) and positions (F, J, 3) of every joint per frame."""
        local_r, local_t = self.local_rotations(), self.local_translations()
        rot, pos = np.empty_like(local_r), np.empty_like(local_t)
        for j, p in enumerate(self.parents):
            if p < 0:
                rot[:, j], pos[:, j] = local_r[:, j], local_t[:, j]
            else:
                rot[:, j] = rot[:, p] @ local_r[:, j]
                pos[:, j] = pos[:, p] + np.einsum("fij,fj->fi", rot[:, p], local_t[:, j])
        return rot, pos

    def rest_positions(self) -> np.ndarray:
        """Joint positions (J, 3) in the rest pose (all channels zero)."""
        pos = np.zeros((len(self.names), 3))
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] + (pos[p] if p >= 0 else 0.0)
        return pos


def axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) by ``angle`` (radians, any shape) about ``axis`` "X", "Y" or "Z"."""
    angle = np.asarray(angle, np.float64)
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    rows = {"X": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
            "Y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
            "Z": [[c, -s, zero], [s, c, zero], [zero, zero, one]]}[axis]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def read_bvh(path: str) -> BVH:
    """Parse the BVH file at ``path`` (see the module docstring)."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: BVH file not found")
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = file.read().splitlines()
    except OSError as error:
        raise InputError(f"{path}: cannot read the BVH file ({error.strerror})") from error
    return parse_bvh(lines, path)


def parse_bvh(lines: list[str], path: str = "<bvh>") -> BVH:
    """Parse BVH text given as lines (``path`` names it in errors)."""

    def fail(number: int, what: str):
        raise InputError(f"{path}: line {number}: {what}")

    def floats(tokens, number, what):
        try:
            return [float(t) for t in tokens]
        except ValueError:
            fail(number, f"{what}: not a number in {' '.join(tokens)!r}")

    names, parents, offsets, channels = [], [], [], []
    stack: list[int] = []  # joint index per open brace (-2: an End Site)
    pending: int | None = None  # the joint (or End Site) whose "{" comes next
    n = 0
    while n < len(lines):
        number, tokens = n + 1, lines[n].split()
        n += 1
        if not tokens:
            continue
        key = tokens[0]
        if key == "HIERARCHY" and not names:
            continue
        if key in ("ROOT", "JOINT"):
            if len(tokens) < 2:
                fail(number, f"{key} without a name")
            if (key == "ROOT") != (not stack) or (key == "ROOT" and names):
                fail(number, f"{key} {tokens[1]} in the wrong place (one ROOT, JOINTs inside it)")
            parent = stack[-1] if stack else -1
            if parent == -2:
                fail(number, "a joint inside an End Site")
            names.append(" ".join(tokens[1:]))
            parents.append(parent)
            offsets.append(None)
            channels.append(())
            pending = len(names) - 1
        elif key == "End":
            pending = -2
        elif key == "{":
            if pending is None:
                fail(number, "'{' without a joint")
            stack.append(pending)
            pending = None
        elif key == "}":
            if not stack:
                fail(number, "unmatched '}'")
            stack.pop()
        elif key == "OFFSET":
            if not stack:
                fail(number, "OFFSET outside a joint")
            values = floats(tokens[1:], number, "OFFSET")
            if len(values) != 3:
                fail(number, f"OFFSET needs 3 numbers, got {len(values)}")
            if stack[-1] >= 0:
                offsets[stack[-1]] = values
        elif key == "CHANNELS":
            if not stack or stack[-1] < 0:
                fail(number, "CHANNELS outside a joint")
            try:
                count = int(tokens[1])
            except (IndexError, ValueError):
                fail(number, "CHANNELS needs a count")
            chans = tuple(tokens[2:])
            if len(chans) != count:
                fail(number, f"CHANNELS says {count} channels but names {len(chans)}")
            unknown = [c for c in chans if c not in _ROTATIONS + _POSITIONS]
            if unknown:
                fail(number, f"unknown channel {unknown[0]!r}")
            channels[stack[-1]] = chans
        elif key == "MOTION":
            break
        else:
            fail(number, f"unexpected {key!r} in the hierarchy")
    else:
        raise InputError(f"{path}: no MOTION section (not a BVH file?)")
    if not names:
        fail(n, "MOTION before any ROOT joint")
    if stack:
        fail(n, "the hierarchy has unclosed braces")
    missing = [names[j] for j, o in enumerate(offsets) if o is None]
    if missing:
        raise InputError(f"{path}: joint {missing[0]} has no OFFSET")

    def header(label):
        nonlocal n
        while n < len(lines) and not lines[n].strip():
            n += 1
        if n >= len(lines) or not lines[n].strip().startswith(label):
            fail(n + 1, f"expected '{label}'")
        n += 1
        return n, lines[n - 1].strip()[len(label):].strip()

    number, text = header("Frames:")
    try:
        n_frames = int(text)
    except ValueError:
        fail(number, f"Frames: not an integer: {text!r}")
    number, text = header("Frame Time:")
    frame_time = floats([text], number, "Frame Time")[0]
    if not frame_time > 0 or n_frames < 1:
        fail(number, "needs at least one frame and a positive frame time")
    n_channels = sum(len(c) for c in channels)
    rows = []
    while n < len(lines) and len(rows) < n_frames:
        number, tokens = n + 1, lines[n].split()
        n += 1
        if not tokens:
            continue
        if len(tokens) != n_channels:
            fail(number, f"frame {len(rows)} has {len(tokens)} values, the hierarchy has {n_channels} channels")
        rows.append(floats(tokens, number, f"frame {len(rows)}"))
    if len(rows) < n_frames:
        raise InputError(f"{path}: 'Frames: {n_frames}' but only {len(rows)} frame rows")
    values = np.asarray(rows, np.float64).reshape(n_frames, n_channels)
    if not np.all(np.isfinite(values)):
        raise InputError(f"{path}: non-finite channel values")
    return BVH(path=path, names=tuple(names), parents=np.asarray(parents, np.int64),
               offsets=np.asarray(offsets, np.float64), channels=tuple(channels), frame_time=frame_time,
               values=values)
