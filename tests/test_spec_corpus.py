"""The broken-spec corpus: each file under corpus/ says, in `# expect:` lines, exactly what
`loop validate` must print for it: file, line, column, field path and message."""

from pathlib import Path

import pytest

CORPUS = Path(__file__).parent / "corpus"
REPO = Path(__file__).parent.parent
CASES = sorted(CORPUS.glob("*.loop.yaml"))


def expected_lines(case: Path) -> list[str]:
    return [line.removeprefix("# expect: ") for line in case.read_text().splitlines()
            if line.startswith("# expect: ")]


def test_the_corpus_covers_at_least_forty_mistakes():
    assert len(CASES) >= 40
    assert all(expected_lines(case) for case in CASES), "every case states what it must print"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name.removesuffix(".loop.yaml"))
def test_broken_spec_prints_its_exact_located_error(case, loop_cli, monkeypatch):
    monkeypatch.chdir(CORPUS)
    result = loop_cli("validate", case.name)
    printed = [line.replace(str(REPO), "<repo>") for line in result.output.splitlines()]
    assert printed == expected_lines(case)
    assert result.exit_code == 2
