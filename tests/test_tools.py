"""Tools: confined to the workdir, only the listed ones, failing as messages and never as crashes."""

import os
import time

import pytest
from helpers import alive, wait_until

from runner.models.base import ToolCall
from runner.spec.resolve import resolve
from runner.tools.sandbox import Commands, policy_for
from runner.tools.shell import allowed, run_command
from runner.tools.toolbox import Hooks, Toolbox

SPEC = """
version: 1
name: tools
model: m
objective: o
tools:
  - read_file
  - write_file
  - edit_file
  - list_files
  - search_files
  - name: shell
    allow: ["ls*", "echo *", "git diff --stat", "python3 -m pytest -q tests/*", "cat a.txt | wc -l"]
    timeout: 5s
  - name: greet
    command: "echo hello {{ args.who }} {{ args.times }}"
    parameters:
      who: {type: string}
      times: {type: integer, default: 1}
      loud: {type: boolean, default: false}
"""


@pytest.fixture
def box(write, tmp_path):
    write("work/a.txt", "alpha\nbeta\ngamma\n")
    write("work/sub/b.py", "def f():\n    return 1\n")
    write("secret.txt", "outside")
    spec_file = write("tools.loop.yaml", SPEC)
    resolved = resolve(spec_file)
    workdir = tmp_path / "work"
    return toolbox(resolved, workdir, tmp_path / "runs")


def toolbox(resolved, workdir, runs):
    """A toolbox as a run makes it: its commands in the run's sandbox, with the run's environment."""
    policy = policy_for(resolved.spec, resolved.files, workdir, runs)
    hooks = Hooks(commands=Commands(policy, policy.environment(["r"])))
    return Toolbox(resolved.spec, resolved.renderer(workdir), hooks, workdir)


def call(box, name, **args):
    return box.call(ToolCall("id1", name, args))


def test_file_tools_read_write_edit_list_search(box, tmp_path):
    assert call(box, "read_file", path="a.txt").output == "alpha\nbeta\ngamma\n"
    short = call(box, "read_file", path="a.txt", start_line=2, end_line=2).output  # shown whole, line 2 named
    assert short == ("alpha\nbeta\ngamma\n\n"
                     "[The whole file, 3 lines, since it is short. Line 2, which you asked for, reads: `beta`]")
    assert call(box, "read_file", path="a.txt", start_line=1, end_line=3).output == "alpha\nbeta\ngamma\n"
    assert call(box, "read_file", path="a.txt", start_line=2).output.endswith("you asked for lines 2-3.]")
    assert call(box, "read_file", path="a.txt", start_line=9).output.endswith("it has no line 9.]")
    first = call(box, "read_file", path="a.txt", start_line=1, end_line=1).output  # from the top: no line named
    assert first == "alpha\nbeta\ngamma\n\n[The whole file, 3 lines, since it is short.]"
    (tmp_path / "work/long.txt").write_text("".join(f"{i}\n" for i in range(1, 151)))
    assert call(box, "read_file", path="long.txt", start_line=2, end_line=3).output == "2\n3\n[lines 2-3 of 150]"
    assert call(box, "read_file", path="long.txt", start_line=140).output.startswith("140\n")
    assert call(box, "write_file", path="new/c.txt", content="hi").ok
    assert (tmp_path / "work/new/c.txt").read_text() == "hi"
    again = call(box, "write_file", path="new/c.txt", content="hi")
    assert again.ok and "nothing changed" in again.output  # idempotent
    assert call(box, "edit_file", path="a.txt", old="beta", new="BETA").ok
    assert (tmp_path / "work/a.txt").read_text() == "alpha\nBETA\ngamma\n"
    assert call(box, "list_files").output.splitlines() == ["a.txt", "long.txt", "new/c.txt", "sub/b.py"]
    assert call(box, "list_files", pattern="*.py").output == "sub/b.py"
    assert call(box, "search_files", pattern=r"return \d").output == "sub/b.py:2:     return 1"


def test_edit_fails_when_the_old_text_is_absent_or_ambiguous(box, tmp_path):
    (tmp_path / "work/dup.txt").write_text("x\nx\n")
    absent = call(box, "edit_file", path="a.txt", old="delta", new="D")
    ambiguous = call(box, "edit_file", path="dup.txt", old="x", new="y")
    assert not absent.ok and "not found" in absent.output
    guessed = call(box, "edit_file", path="a.txt", old="print('Hello, world!')", new="x").output
    assert "The whole file:\n```\nalpha\nbeta\ngamma\n```" in guessed  # nothing near, and the file is short
    assert not ambiguous.ok and "occurs 2 times" in ambiguous.output
    assert '- line 1: old "x\\nx", new "y\\nx"\n- line 2: old "x\\nx", new "x\\ny"' in ambiguous.output
    assert (tmp_path / "work/dup.txt").read_text() == "x\nx\n"
    every = call(box, "edit_file", path="dup.txt", old="x", new="y", replace_all=True)
    assert every.ok and "2 times" in every.output and (tmp_path / "work/dup.txt").read_text() == "y\ny\n"


ESCAPES = ["../secret.txt", "/etc/passwd", "sub/../../secret.txt", "./sub/../../secret.txt", "~/x",
           "link_out/secret.txt", "link_file", ".loop/runs/x"]


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("tool,extra", [("read_file", {}), ("write_file", {"content": "x"}),
                                        ("edit_file", {"old": "o", "new": "n"}), ("list_files", {}),
                                        ("search_files", {"pattern": "x"})])
def test_every_file_tool_refuses_paths_that_leave_the_workdir(box, tmp_path, path, tool, extra):
    work = tmp_path / "work"
    if not (work / "link_out").exists():
        os.symlink(tmp_path, work / "link_out")
        os.symlink(tmp_path / "secret.txt", work / "link_file")
    result = call(box, tool, path=path, **extra)
    assert not result.ok
    assert any(word in result.output for word in ("outside the workdir", "absolute", "off limits"))
    assert (tmp_path / "secret.txt").read_text() == "outside"


def test_search_and_list_skip_symlinks_that_point_outside(box, tmp_path):
    os.symlink(tmp_path / "secret.txt", tmp_path / "work/leak.txt")
    assert "outside" not in call(box, "search_files", pattern="outside").output
    assert "leak.txt" not in call(box, "list_files").output


def test_only_listed_tools_are_offered_and_others_are_refused(box):
    offered = [s["function"]["name"] for s in box.schemas()]
    assert offered == ["read_file", "write_file", "edit_file", "list_files", "search_files", "shell", "greet",
                       "finish", "note", "read_artifact"]
    refused = call(box, "delete_everything", path=".")
    assert not refused.ok and "not a tool you can call" in refused.output and "read_file" in refused.output


def test_bad_arguments_come_back_as_messages(box):
    assert "missing argument `path`" in call(box, "read_file").output
    assert "must be a integer" in call(box, "read_file", path="a.txt", start_line="2").output
    assert "unknown argument(s) colour" in call(box, "read_file", path="a.txt", colour="red").output
    bad_json = box.call(ToolCall("id", "read_file", None, raw="{path: a.txt"))
    assert not bad_json.ok and "not a JSON object" in bad_json.output


def test_custom_command_quotes_every_argument(box, tmp_path):
    result = call(box, "greet", who="world; touch pwned $(touch pwned2)", times=2)
    assert result.ok
    assert "hello world; touch pwned $(touch pwned2) 2" in result.output
    assert not (tmp_path / "work/pwned").exists() and not (tmp_path / "work/pwned2").exists()
    assert "must be a integer" in call(box, "greet", who="x", times="many").output


ALLOWED = ["ls", "ls -la sub", "echo hi", "git diff --stat", "python3 -m pytest -q tests/test_a.py",
           "cat a.txt | wc -l"]
REFUSED = [
    "rm -rf /", "ls; rm -rf /", "ls && rm x", "ls || rm x", "ls | sh", "echo `id`", "echo $(id)", "ls > out",
    "ls < /etc/passwd", "ls >> out", "echo ${IFS}", "echo $HOME", "ls\nrm x", "ls\rrm x", "ls &", "ls *",
    "ls ?", "ls [a]", "FOO=1 ls", "git diff --stat; ls", "git diff --stat --output=x", "(ls)", "{ ls; }",
    "cat a.txt | wc -l | sh", "cat a.txt |  wc -l", "python3 -m pytest -q tests/x; id", "ls 2>&1",
    "echo hi >/dev/null", "ls $'\\x3b' id",
]


@pytest.mark.parametrize("command", ALLOWED)
def test_shell_allows_what_a_pattern_covers(command):
    assert allowed(command, SPEC_PATTERNS)


@pytest.mark.parametrize("command", REFUSED)
def test_shell_refuses_every_bypass_the_patterns_do_not_spell_out(command, box, tmp_path):
    assert not allowed(command, SPEC_PATTERNS)
    result = call(box, "shell", command=command)
    assert not result.ok and "is not allowed" in result.output


SPEC_PATTERNS = ["ls*", "echo *", "git diff --stat", "python3 -m pytest -q tests/*", "cat a.txt | wc -l"]


def test_shell_runs_an_allowed_command_in_the_workdir(box):
    result = call(box, "shell", command="ls")
    assert result.ok and "a.txt" in result.output and "[exit code 0]" in result.output
    piped = call(box, "shell", command="cat a.txt | wc -l")
    assert piped.ok and piped.output.startswith("3")


def test_a_command_that_times_out_is_killed_with_all_its_children(tmp_path):
    started = time.monotonic()
    result = run_command("sleep 60 & echo $! > child.pid; sleep 60", tmp_path, timeout=0.5)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 5
    child = int((tmp_path / "child.pid").read_text())
    assert wait_until(lambda: not alive(child)), "the background child survived the timeout"


def test_background_children_do_not_outlive_a_finished_command(tmp_path):
    result = run_command("(sleep 60 & echo $! > child.pid); echo done", tmp_path, timeout=10)
    assert result.exit_code == 0 and result.output.strip() == "done"
    child = int((tmp_path / "child.pid").read_text())
    assert wait_until(lambda: not alive(child))


def test_huge_output_is_cut_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr("runner.tools.capture.MAX_CAPTURE", 1000)
    result = run_command("seq 1 100000", tmp_path, timeout=10)
    assert "bytes of output cut here" in result.output and len(result.output) < 1200
    assert result.output.startswith("1\n2\n") and result.output.rstrip().endswith("100000")


def test_an_absolute_path_into_the_workdir_is_taken_as_relative(box, tmp_path):
    work = tmp_path / "work"
    assert call(box, "read_file", path=f"{work}/a.txt").output.startswith("alpha")
    assert call(box, "edit_file", path=str(work / "sub" / "b.py"), old="return 1", new="return 2").ok
    assert "return 2" in (work / "sub/b.py").read_text()


@pytest.mark.parametrize("suffix", ["/../secret.txt", "/sub/../../secret.txt", "/../work2/x", "/.loop/runs/x"])
def test_an_absolute_path_cannot_climb_out_of_the_workdir(box, tmp_path, suffix):
    (tmp_path / "work2").mkdir()
    for tool, extra in (("read_file", {}), ("write_file", {"content": "pwned"})):
        result = call(box, tool, path=f"{tmp_path}/work{suffix}", **extra)
        assert not result.ok and ("outside the workdir" in result.output or "off limits" in result.output)
    assert (tmp_path / "secret.txt").read_text() == "outside" and not (tmp_path / "work2/x").exists()


def test_a_missing_path_names_the_similar_paths_that_exist(box):
    result = call(box, "read_file", path="b.py")
    assert not result.ok and "does not exist" in result.output and "sub/b.py" in result.output
    assert "write_file" not in result.output  # it names no tool, offered or not
    assert "Similar" not in call(box, "read_file", path="zzz/qqq.md").output


def test_edit_file_forgives_whitespace_but_shows_the_closest_text_for_other_differences(box, tmp_path):
    work = tmp_path / "work"
    (work / "m.py").write_text("class A:\n    def f(self):\n        return 'x'  \n\n"
                               "    def g(self):\n        return 1\n")
    shifted = call(box, "edit_file", path="m.py", old="def f(self):\n    return 'x'",
                   new="def f(self):\n    return 'y'")
    assert shifted.ok and "whitespace" in shifted.output
    assert (work / "m.py").read_text() == ("class A:\n    def f(self):\n        return 'y'\n\n"
                                           "    def g(self):\n        return 1\n")
    quoted = call(box, "edit_file", path="m.py", old='def g(self):\n    return "1"', new="x")
    assert not quoted.ok and "lines 5-6" in quoted.output and "        return 1" in quoted.output
    assert "x" not in (work / "m.py").read_text().split("return 1")[1]  # nothing was guessed


def test_edit_file_applies_no_whitespace_match_that_is_not_unique(box, tmp_path):
    (tmp_path / "work/d.py").write_text("if a:\n    go()\nif b:\n  go()\n")
    result = call(box, "edit_file", path="d.py", old="go()   ", new="stop()")  # no exact match; two loose ones
    assert not result.ok and "not found" in result.output
    assert (tmp_path / "work/d.py").read_text() == "if a:\n    go()\nif b:\n  go()\n"


def test_the_shell_schema_lists_the_allowed_patterns(box):
    shell = next(s["function"] for s in box.schemas() if s["function"]["name"] == "shell")
    assert "`git diff --stat`" in shell["description"] and "`python3 -m pytest -q tests/*`" in shell["description"]


def test_read_file_on_a_folder_names_its_files(box):
    result = call(box, "read_file", path="sub")
    assert not result.ok and "is a folder" in result.output and "sub/b.py" in result.output


def test_the_file_tools_do_not_list_a_runs_directory_inside_the_workdir(write, tmp_path):
    write("work/a.txt", "x")
    write("work/records/.loop-runs", "")
    write("work/records/r1/trace.jsonl", "{}")
    resolved = resolve(write("tools.loop.yaml", SPEC))
    inside = toolbox(resolved, tmp_path / "work", tmp_path / "work" / "records")
    assert call(inside, "list_files").output == "a.txt"
    assert "r1" not in call(inside, "search_files", pattern=".").output


def test_edit_file_takes_joined_lines_word_for_word_keeping_the_files_whitespace(box, tmp_path):
    work = tmp_path / "work"
    (work / "c.py").write_text("def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a + b\n")
    joined = call(box, "edit_file", path="c.py", old="def add(a, b): return a - b", new="def add(a, b): return a + b")
    assert joined.ok and "line breaks and indentation were kept" in joined.output
    assert (work / "c.py").read_text() == "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a + b\n"
    for old, new in (("def mul(a, b): return a + b", "def mul(a, b): return a * b * 1"),  # another word count
                     ("(a, b): return a +", "(a, b): return a *")):  # matches in two places now
        result = call(box, "edit_file", path="c.py", old=old, new=new)
        assert not result.ok and "not found" in result.output
    assert (work / "c.py").read_text() == "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a + b\n"


def test_an_edit_made_before_is_a_no_op_not_a_failure(box, tmp_path):
    work = tmp_path / "work"
    (work / "c.py").write_text("def add(a, b):\n    return a - b\n")
    for _ in range(2):  # the second time, as a model retrying it would
        result = call(box, "edit_file", path="c.py", old="def add(a, b): return a - b",
                      new="def add(a, b): return a + b")
        assert result.ok
    assert "made before" in result.output and (work / "c.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert not call(box, "edit_file", path="c.py", old="return a * b", new="return a / b").ok  # new is absent too


def test_an_edit_whose_new_text_was_there_all_along_is_not_taken_as_made_before(box, tmp_path):
    work = tmp_path / "work"
    (work / "s.py").write_text("def log(*args):\n    pass\n")
    # A small model's edit of a line of a check's output: `pass` is in the file, but no edit put it there.
    result = call(box, "edit_file", path="s.py", old="PermissionError: [Errno 13] Permission denied", new="pass")
    assert not result.ok and "not found" in result.output and "made before" not in result.output


def test_an_insertion_made_before_is_not_made_twice(box, tmp_path):
    work = tmp_path / "work"
    (work / "c.py").write_text("def add(a, b):\n    return a - b\n")
    for _ in range(3):  # a model that reads the file and makes the same insertion again, as real ones do
        result = call(box, "edit_file", path="c.py", old="def add(a, b):", new="def add(a, b):\n    return a + b")
        assert result.ok
    assert "made before" in result.output
    assert (work / "c.py").read_text() == "def add(a, b):\n    return a + b\n    return a - b\n"
    appended = call(box, "edit_file", path="c.py", old="return a - b", new="x = 1\n    return a - b")  # before old
    assert appended.ok and "edited" in appended.output


def test_a_refused_edit_of_a_test_points_at_the_code_it_tests(write, tmp_path):
    write("q/calc.py", "def add(a, b):\n    return a - b\n")
    write("q/tests/test_calc.py", "from calc import add\n\nassert add(1, 2) == 3\n")
    write("q/notes.md", "# notes\n")
    spec_file = write("q/q.loop.yaml", SPEC.replace("tools:", "protect: [tests/**]\ntools:", 1))
    box = toolbox(resolve(spec_file), tmp_path / "q", tmp_path / "runs")
    refused = call(box, "edit_file", path="tests/test_calc.py", old="add", new="plus")
    assert not refused.ok and "is read-only for you" in refused.output
    assert refused.output.endswith("Leave the test as it is and change the code it tests: calc.py, which holds:\n"
                                   "```\ndef add(a, b):\n    return a - b\n```")
    spec_refused = call(box, "write_file", path="q.loop.yaml", content="x")  # not a test: no such hint
    assert not spec_refused.ok and "change the code it tests" not in spec_refused.output
    read = call(box, "read_file", path="tests/test_calc.py", start_line=3, end_line=3).output
    assert "is read-only for you" in read and "which you asked for" not in read  # its line is no `old` to use
    assert "Line 2, which you asked for, reads: `    return a - b`" in call(box, "read_file", path="calc.py",
                                                                           start_line=2, end_line=2).output


def test_an_empty_new_deletes_the_old_text(box, tmp_path):
    (tmp_path / "work/inv.py").write_text("import os\nimport sys\n\nprint(sys.argv)\n")
    assert call(box, "edit_file", path="inv.py", old="import os\n", new="").ok
    assert (tmp_path / "work/inv.py").read_text() == "import sys\n\nprint(sys.argv)\n"


def test_an_ambiguous_edit_offers_each_place_as_an_edit_to_copy_its_own_last_edit_last(box, tmp_path):
    (tmp_path / "work/calc.py").write_text("def add(a, b):\n    return a - b\n\n\ndef multiply(a, b):\n"
                                           "    return a + b\n")
    assert call(box, "edit_file", path="calc.py", old="return a - b", new="return a + b").ok
    refused = call(box, "edit_file", path="calc.py", old="return a + b", new="return a * b")
    assert not refused.ok and "occurs 2 times in calc.py" in refused.output
    mine = '- line 2: old "def add(a, b):\\n    return a + b", new "def add(a, b):\\n    return a * b"'
    other = '- line 6: old "def multiply(a, b):\\n    return a + b", new "def multiply(a, b):\\n    return a * b"'
    assert f"{other}\n{mine} (your last edit of this file wrote it)" in refused.output  # the other one first
    same = call(box, "edit_file", path="calc.py", old="return a + b", new="return a + b").output
    assert "old and new are the same" in same and "line 6" not in same  # no choice that would change nothing
    done = call(box, "edit_file", path="calc.py", old="def multiply(a, b):\n    return a + b",
                new="def multiply(a, b):\n    return a * b")  # the edit copied from the refusal: unique
    assert done.ok and (tmp_path / "work/calc.py").read_text().endswith("    return a * b\n")
    indented = call(box, "edit_file", path="calc.py", old="return a * b", new="    return a * b")
    assert not indented.ok and "the same but for the indentation the file has already" in indented.output


def test_an_ambiguous_edit_that_no_nearby_lines_make_unique_shows_its_places(box, tmp_path):
    (tmp_path / "work/same.txt").write_text("a\nb\nc\nd\ne\nf\ng\nh\n" * 2)
    refused = call(box, "edit_file", path="same.txt", old="d", new="D")
    assert "- line 4, among:\n```\nc\nd\ne\n```\n- line 12, among:\n```\nc\nd\ne\n```" in refused.output


def test_an_edit_shows_the_lines_it_changed_with_those_around_them(box, tmp_path):
    work = tmp_path / "work"
    (work / "c.py").write_text("".join(f"line {i}\n" for i in range(1, 21)))
    exact = call(box, "edit_file", path="c.py", old="line 10\n", new="ten\n")
    assert exact.ok and exact.output.endswith("c.py lines 6-14 of 20 now read:\n```\n" + "\n".join(
        [f"line {i}" for i in range(6, 10)] + ["ten"] + [f"line {i}" for i in range(11, 15)]) + "\n```")
    loose = call(box, "edit_file", path="c.py", old="line 1  \nline 2  ", new="one\ntwo")  # forgiven: line ends
    assert loose.ok and "c.py lines 1-6 of 20 now read:\n```\none\ntwo\nline 3\n" in loose.output
    (work / "big.txt").write_text("x\n" * 50)
    wide = call(box, "edit_file", path="big.txt", old="x", new="y", replace_all=True)
    assert wide.ok and "now read" not in wide.output  # too many lines to show: the count says what happened


def test_a_failed_edit_of_a_short_file_points_to_write_file_only_where_it_is_offered(box, write, tmp_path):
    (tmp_path / "work/long.txt").write_text("".join(f"line {i}\n" for i in range(1, 61)))
    short = call(box, "edit_file", path="a.txt", old="delta", new="D").output
    long = call(box, "edit_file", path="long.txt", old="delta", new="D").output
    assert "write_file with its whole new content" in short and "write_file" not in long
    spec = write("edit-only.loop.yaml", "version: 1\nname: e\nmodel: m\nobjective: o\ntools: [edit_file]\n")
    edit_only = toolbox(resolve(spec), tmp_path / "work", tmp_path / "runs")
    assert "write_file" not in call(edit_only, "edit_file", path="a.txt", old="delta", new="D").output
