"""A Python traceback as the model needs it: the frames of its own code, not those of the library.

A check or a command that fails inside the standard library or an installed package prints
frame after frame of code the agent cannot change (`json.load` alone takes five). They cost
tokens and bury the lines that matter: the workdir's frames and the error itself. Two or more
frames in a row outside the workdir are folded into one line that names their files.

A frame is outside the workdir when its file is absolute and under none of the workdir's paths
(`roots`), or `<frozen ...>`; a relative path is in the workdir, where commands run.
"""

from __future__ import annotations

import re

FRAME = re.compile(r'^( *)File "([^"]+)", line \d+, in ')
MIN_FOLDED = 2  # a single frame costs less than the line that would stand for it


def fold(text: str, roots: tuple[str, ...]) -> str:
    """`text` with each run of library frames in a traceback folded into one line."""
    if "Traceback (most recent call last)" not in text:
        return text
    lines, out = text.split("\n"), []
    run: list[tuple[str, list[str]]] = []  # the frames in a row outside the workdir: (file, lines)
    i = 0
    while i < len(lines):
        match = FRAME.match(lines[i])
        if not match:
            out += _folded(run)
            run = []
            out.append(lines[i])
            i += 1
            continue
        frame, indent = [lines[i]], len(match.group(1))
        i += 1
        while i < len(lines) and len(lines[i]) - len(lines[i].lstrip(" ")) > indent and lines[i].strip():
            frame.append(lines[i])  # the frame's source line and its ^^^ markers
            i += 1
        if _outside(match.group(2), roots):
            run.append((match.group(2), frame))
        else:
            out += _folded(run) + frame
            run = []
    return "\n".join(out + _folded(run))


def _outside(path: str, roots: tuple[str, ...]) -> bool:
    if path.startswith("<frozen"):
        return True
    return path.startswith("/") and not any(path == root or path.startswith(root + "/") for root in roots)


def _folded(run: list[tuple[str, list[str]]]) -> list[str]:
    if len(run) < MIN_FOLDED:
        return [line for _, frame in run for line in frame]
    first = run[0][1][0]
    indent = first[: len(first) - len(first.lstrip(" "))]
    files = dict.fromkeys("/".join(file.split("/")[-2:]) for file, _ in run)  # json/decoder.py, not the whole path
    return [f"{indent}[{len(run)} frames outside the workdir left out: {', '.join(files)}]"]
