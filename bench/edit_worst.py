"""The slowest edit_file an agent can provoke: files and `old` texts built to make the loose matching
(tools/matching.py) and its closest-match hint work hardest, at the bounds. Prints the median time
of each reading over a few repetitions.

    python bench/edit_worst.py [--json]
"""

from __future__ import annotations

import random
import time

from common import emit, median

from runner.tools.matching import closest, done_already, loosely


def timed(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return median(times)


def main() -> None:
    rng = random.Random(1)
    noise = "\n".join("".join(rng.choice("abcdefgh ") for _ in range(40)) for _ in range(6000))[:256 * 1024]
    guess = "\n".join("".join(rng.choice("abcdefgh ") for _ in range(40)) for _ in range(24))
    repeated = "a " * 128_000  # every word matches everywhere
    one_line = "x" * 250_000
    long_old, long_new = "a " * 199 + "b", "a " * 199 + "c"
    emit({
        "closest_hint_lookalike_lines_s": timed(lambda: closest(noise, guess)),
        "closest_hint_repeated_word_s": timed(lambda: closest(repeated, "a " * 450 + "b")),
        "closest_hint_one_long_line_s": timed(lambda: closest(one_line, "x" * 900 + "y")),
        "loose_edit_repeated_words_s": timed(lambda: loosely(repeated, long_old, long_new)),
        "made_before_repeated_words_s": timed(lambda: done_already(repeated, long_old, "q", ["q"])),
    })


if __name__ == "__main__":
    main()
