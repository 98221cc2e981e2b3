"""Finding the text an edit means when the model did not copy it exactly.

Models rarely get `old` wrong in substance, but often in whitespace: a line's indentation shifted
as a whole, spaces left at line ends, or two lines joined into one (a small model avoids `\n` in
its JSON arguments). `lenient` applies an edit when exactly one run of whole lines matches once
line-end spaces and a uniform indentation shift are ignored, and shifts the new text alike.
`reflowed` applies one whose `old` matches exactly one place word for word, whatever the
whitespace between the words, when `new` has as many words: each word of `new` takes the place
of one of `old`, with the file's own whitespace between them. `requoted` forgives the other kind
of quote: a small model writes `'` where the file has `"` (its JSON arguments would need `\"`),
so an `old` with one kind of quote that matches once with the other kind is applied, with `new`'s
quotes turned alike. Any other difference (a changed word count) is not guessed at: `closest`
shows the model the text that comes nearest, so that its next try copies it. `done_already` and
`in_place` recognise an edit made before, so that a retried edit changes nothing.
"""

from __future__ import annotations

import bisect
import difflib
import heapq
import itertools
import json
import re

# The agent controls both the file and `old`: bounds keep every loose reading and hint under a second.
MAX_LOOSE_CHARS = 256 * 1024  # larger files get exact matching only
MAX_HINT_OLD_CHARS = 1000  # a longer `old` gets no closest-match hint (the close comparison is quadratic)
HINT_ANCHORS = 3  # candidate places compared closely
MIN_LIKENESS = 0.5
MAX_REFLOW_WORDS = 200
MAX_CHOICE_CHARS = 600  # a longer widened edit is shown as lines to read, not as an edit to copy
WIDEN_MOST = 3  # lines added on either side of an ambiguous `old` to make it unique


def _indent(line: str) -> str:
    return line[:len(line) - len(line.lstrip())]


def _shift(window: list[str], want: list[str]) -> int | None:
    """How far `want` is indented from `window` if they are the same lines otherwise, else None."""
    shift = None
    for got, wanted in zip(window, want):
        if got.strip() != wanted.strip():
            return None
        if got.strip():
            moved = len(_indent(got)) - len(_indent(wanted))
            if shift is not None and moved != shift:
                return None
            shift = moved
    return shift or 0


def _reindented(new: str, shift: int, char: str) -> list[str] | None:
    lines = new.splitlines()
    if shift >= 0:
        return [char * shift + line if line.strip() else line for line in lines]
    if any(line.strip() and not line.startswith(char * -shift) for line in lines):
        return None
    return [line[-shift:] if line.strip() else line for line in lines]


def lenient(text: str, old: str, new: str) -> str | None:
    """`text` with `old` replaced by `new`, if `old` matches exactly one run of whole lines once
    line-end whitespace and a uniform shift of indentation are ignored; else None."""
    want = old.strip("\r\n").splitlines()
    if not any(line.strip() for line in want):
        return None
    lines = text.splitlines(keepends=True)
    size = len(want)
    found = [(i, shift) for i in range(len(lines) - size + 1) if lines[i].strip() == want[0].strip()
             and (shift := _shift(lines[i:i + size], want)) is not None]
    if len(found) != 1:
        return None
    start, shift = found[0]
    window = lines[start:start + size]
    char = next((_indent(line)[0] for line in window if _indent(line.rstrip("\r\n"))), " ")
    replaced = _reindented(new, shift, char)
    if replaced is None:
        return None
    last = window[-1]
    ending = last[len(last.rstrip("\r\n")):]
    middle = (("\r\n" if "\r\n" in text else "\n").join(replaced) + ending) if replaced else ""
    return "".join(lines[:start]) + middle + "".join(lines[start + size:])


def reflowed(text: str, old: str, new: str) -> str | None:
    """`text` with the one place that matches `old` word for word (any whitespace between the words)
    replaced by `new`'s words, kept apart by the file's whitespace; None unless that is unambiguous."""
    places, new_words = _places(text, old), new.split()
    if len(places) != 1 or len(new_words) != len(old.split()):
        return None
    match = places[0]
    gaps = re.findall(r"\s+", match.group())
    rebuilt = new_words[0] + "".join(gap + word for gap, word in zip(gaps, new_words[1:]))
    return text[:match.start()] + rebuilt + text[match.end():]


def requoted(old: str, new: str) -> tuple[str, str, str] | None:
    """`old` and `new` with the one kind of quote `old` has turned into the other, and the kind it
    became; None when `old` has both kinds or none, or `new` already has the other (turning it
    would change what `new` says)."""
    for mine, other in (("'", '"'), ('"', "'")):
        if mine in old and other not in old and other not in new:
            return old.replace(mine, other), new.replace(mine, other), other
    return None


def loosely(text: str, old: str, new: str) -> tuple[str, str] | None:
    """`text` edited as the model meant, and how that was read; None if it is not unambiguous."""
    if len(text) > MAX_LOOSE_CHARS:
        return None
    edited = _rewhitespaced(text, old, new)
    if edited is not None:
        return edited[0], f"apart from whitespace; {edited[1]}"
    swapped = requoted(old, new)
    if swapped is None:
        return None
    old, new, quote = swapped
    quoted = f"with {quote} for quotes, as the file has them; new was written with {quote} too"
    if text.count(old) == 1:
        return text.replace(old, new), quoted
    edited = _rewhitespaced(text, old, new)
    return None if edited is None else (edited[0], f"{quoted}, and {edited[1]}")


def _rewhitespaced(text: str, old: str, new: str) -> tuple[str, str] | None:
    edited = lenient(text, old, new)
    if edited is not None:
        return edited, "the new text's indentation was shifted to fit"
    edited = reflowed(text, old, new)
    return None if edited is None else (edited, "the file's line breaks and indentation were kept")


def done_already(text: str, old: str, new: str, made: list[str]) -> bool:
    """Whether the edit was made before: `old` is nowhere (not even word for word), `new` is there and
    was put there by one of the edits `made` (the new texts of this file's edits, word for word). That
    `new` merely occurs is not enough: `pass` is in many files, and a small model told its edit of
    text that is not there was "made before" takes it as done."""
    words = " ".join(new.split())
    return (bool(words) and any(words in " ".join(m.split()) for m in made) and not _places(text, old)
            and (new in text or bool(_places(text, new))))


def in_place(text: str, old: str, new: str) -> bool:
    """Whether `new`, which contains `old`, already stands where `old` is found: the edit was made."""
    at = new.find(old)
    if not old or at < 0:
        return False
    start = text.find(old)
    return start >= at and text.startswith(new, start - at)


def _places(text: str, snippet: str) -> list[re.Match[str]]:
    """The first two places that match `snippet` word for word, with any whitespace between the words."""
    words = snippet.split()
    if not words or len(words) > MAX_REFLOW_WORDS or len(text) > MAX_LOOSE_CHARS:
        return []
    return list(itertools.islice(re.finditer(r"\s+".join(map(re.escape, words)), text), 2))


def choices(text: str, old: str, new: str, written: tuple[int, int] | None = None, most: int = 3) -> str:
    """Each place the ambiguous `old` occurs, as the whole edit that would change only it: `old` and
    `new` widened by the lines around it until `old` is unique. A small model cannot widen `old`
    itself, but copies a ready edit. A place inside `written` (the lines the agent's last edit of
    the file wrote) comes last and says so: a follow-up edit seldom means the text just written."""
    lines = text.splitlines(keepends=True)
    starts = list(itertools.accumulate((len(line) for line in lines), initial=0))
    places, found = [], text.find(old)
    while found >= 0 and old:
        places.append(found)
        found = text.find(old, found + len(old))
    first_line = [bisect.bisect_right(starts, at) for at in places]  # 1-based
    mine = [written is not None and written[0] <= line <= written[1] for line in first_line]
    order = sorted(range(len(places)), key=lambda i: mine[i])
    shown = [_choice(text, lines, starts, places[i], old, new) + (" (your last edit of this file wrote it)"
                                                                 if mine[i] else "") for i in order[:most]]
    more = f"\n(and {len(places) - most} more)" if len(places) > most else ""
    return "\n".join(f"- line {first_line[i]}{text_}" for i, text_ in zip(order, shown)) + more


def _choice(text: str, lines: list[str], starts: list[int], at: int, old: str, new: str) -> str:
    """`: old "...", new "..."`, widened by up to WIDEN_MOST lines before, then after, until unique."""
    top = bisect.bisect_right(starts, at) - 1
    bottom = bisect.bisect_right(starts, at + len(old) - 1) - 1
    for before, after in _widenings():
        first, last = top - before, bottom + after
        if first < 0 or last >= len(lines):
            continue
        begin, end = starts[first], max(starts[last] + len(lines[last].rstrip("\r\n")), at + len(old))
        block = text[begin:end]
        if len(block) > MAX_CHOICE_CHARS:
            break
        if text.count(block) == 1:
            edit = text[begin:at] + new + text[at + len(old):end]
            return f": old {json.dumps(block, ensure_ascii=False)}, new {json.dumps(edit, ensure_ascii=False)}"
    shown = "".join(lines[max(top - 1, 0):bottom + 2]).rstrip("\r\n")
    return f", among:\n```\n{shown}\n```"


def _widenings() -> list[tuple[int, int]]:
    """(lines before, lines after) to try, fewest first, the lines before first: a block's header is above it."""
    pairs = [(b, a) for b in range(WIDEN_MOST + 1) for a in range(WIDEN_MOST + 1)]
    return sorted(pairs, key=lambda pair: (sum(pair), -pair[0]))


def closest(text: str, old: str) -> str:
    """The file's text nearest to `old`, shown for the model to copy; empty if nothing is near. Lines
    sharing the most words with `old`'s first line are the candidates (cheap, whatever the file); at
    each, windows of a line fewer to two more than `old` has are compared closely: a model often
    joins or splits lines."""
    want = old.strip("\r\n").splitlines() or [old]
    lines = text.splitlines()
    if len(text) > MAX_LOOSE_CHARS or len(old) > MAX_HINT_OLD_CHARS or not want[0].strip():
        return ""
    first = _words(want[0])
    anchors = heapq.nlargest(HINT_ANCHORS, range(len(lines)), key=lambda i: _shared(_words(lines[i]), first))
    target = "\n".join(want)
    best, at, size = 0.0, 0, 0
    for start in anchors:
        for span in range(max(len(want) - 1, 1), len(want) + 3):
            window = "\n".join(lines[start:start + span])[:MAX_HINT_OLD_CHARS + 500]
            likeness = difflib.SequenceMatcher(None, window, target, autojunk=False).ratio()
            if likeness > best:
                best, at, size = likeness, start, min(span, len(lines) - start)
    if best < MIN_LIKENESS:
        return ""
    shown = "\n".join(lines[at:at + size])
    where = f"line {at + 1}" if size == 1 else f"lines {at + 1}-{at + size}"
    return f"The closest text is at {where} ({best:.0%} alike):\n```\n{shown}\n```\n"


def _words(line: str) -> set[str]:
    return set(re.findall(r"\w+|[^\w\s]", line))


def _shared(words: set[str], wanted: set[str]) -> float:
    return len(words & wanted) / (len(words | wanted) or 1)
