"""What the loop adds to a refused edit from the turns before (engine/hints.py): where a copied `old`
came from and which line of the file it means, and which place of an ambiguous edit the failing check
calls. Each test plays the small model's mistake with the scripted model."""

from pathlib import Path

from helpers import context_units, events, run_folder
from test_loop import spec


def _edit_outputs(path, loop_cli) -> list[str]:
    """Run the spec with edit_file offered too; the outputs of its edit_file calls."""
    path.write_text(path.read_text().replace("  - write_file\n", "  - write_file\n  - edit_file\n"))
    loop_cli("run", path)
    return [e["output_preview"] for e in events(run_folder(Path("runs")), "tool_call") if e["name"] == "edit_file"]


def test_an_edit_of_text_copied_from_a_check_report_or_a_command_is_told_where_it_came_from(write, loop_cli):
    write("inv.py", "import os\n\nprint(1)\n")
    checks = ("verify:\n  at_start: true\n  checks:\n"
              "    - {name: lint, run: 'echo \"inv.py:1:8: F401 os imported but unused\"; "
              "echo \"F841 count is never used\"; echo \" --> inv.py:3:1\"; exit 1'}\n"
              "stop: {max_iterations: 2}\n")
    path = spec(write, """
        - tools:
            - edit_file: {path: inv.py, old: "F401 os imported but unused", new: ""}
            - edit_file: {path: inv.py, old: "F841 count is never used", new: ""}
            - edit_file: {path: inv.py, old: "F401 os imported but unused\\n  1 | import os\\n  - import sys", new: ""}
        - tools:
            - shell: {command: "echo Traceback: line 3 of inv.py"}
            - edit_file: {path: inv.py, old: "Traceback: line 3", new: "x"}
            - edit_file: {path: inv.py, old: "nothing like it anywhere", new: "x"}
        """, checks)
    outputs = _edit_outputs(path, loop_cli)
    assert ("[Your `old` is text from a check report, not from inv.py. It points at inv.py line 1, which reads "
            "`import os`: put that line in `old`") in outputs[0]  # the line the finding names, ready to copy
    assert "It points at inv.py line 3, which reads `print(1)`" in outputs[1]  # ruff's `-->` line after the finding
    assert "It points at inv.py line 1, which reads `import os`" in outputs[2]  # the finding, then lines made up
    assert "[Your `old` is text from the output of `shell`, not from inv.py: copy `old` from the file" in outputs[3]
    assert "not found" in outputs[4] and "Your `old`" not in outputs[4]  # from nowhere: no source to name

def test_an_ambiguous_edit_is_told_which_place_is_in_the_function_the_failing_check_calls(write, loop_cli):
    write("calc.py", "def add(a, b):\n    return a + b\n\n\ndef multiply(a, b):\n    return a + b\n")
    checks = ("verify:\n  at_start: true\n  checks:\n"
              "    - {name: tests, run: 'echo \"self.assertEqual(multiply(4, 5), 20)\"; echo \"9 != 20\"; exit 1'}\n"
              "stop: {max_iterations: 1}\n")
    path = spec(write, """
        - tools:
            - edit_file: {path: calc.py, old: "return a + b", new: "return a * b"}
            - edit_file: {path: calc.py, old: "(a, b)", new: "(a, b, c)"}
        """, checks)
    outputs = _edit_outputs(path, loop_cli)
    assert "occurs 2 times" in outputs[0] and outputs[0].endswith(
        "\n[The failing check calls `multiply`: line 6 is in `multiply`.]")
    assert "occurs 2 times" in outputs[1] and "failing check calls" not in outputs[1]  # on the def lines: in none


def test_an_edit_of_a_report_line_nothing_points_at_is_shown_the_line_that_prints_it(write, loop_cli):
    write("server.py", 'def do_GET(self):\n    if self.path == "/books":\n        self.send_json(200, BOOKS)\n'
                       '    else:\n        self.send_json(404, {"error": "not found"})\n')
    write("report.py", 'print(\'GET /health -> 404 {"error": "not found"}\')\nraise SystemExit(1)\n')
    checks = ("verify:\n  at_start: true\n  checks:\n    - {name: health, run: python3 report.py}\n"
              "stop: {max_iterations: 2}\n")
    path = spec(write, """
        - tools:
            - edit_file: {path: server.py, old: "GET /health -> 404", new: "GET /health -> 200"}
        - tools:
            - shell: {command: "echo GET /books is fine"}
            - edit_file: {path: server.py, old: "GET /books is fine", new: "x"}
        """, checks)
    outputs = _edit_outputs(path, loop_cli)
    assert outputs[0].endswith(
        '[Your `old` is text from a check report, not from server.py. Its `{"error": "not found"}` comes from '
        'server.py line 5, which reads `self.send_json(404, {"error": "not found"})`: put that line in `old`, '
        'and in `new` what it should become (an empty `new` deletes it).]')
    assert outputs[1].endswith("not from server.py: copy `old` from the file itself, as it reads now.]")


def test_a_failing_output_that_names_no_file_is_told_which_line_prints_it(write, loop_cli):
    write("server.py", 'def reply(path):\n    if path == "/books":\n        return 200, BOOKS\n'
                       '    return 404, {"error": "not found"}\n')
    write("checker.py", 'print("GET /health -> 404", {"error": "not found"})\nraise SystemExit(1)\n')  # as a repr
    write("traced.py", 'print(\'File "server.py", line 4: {"error": "not found"}\')\nraise SystemExit(1)\n')
    checks = ("verify:\n  at_start: true\n  checks:\n    - {name: health, run: python3 checker.py}\n"
              "    - {name: traced, run: python3 traced.py}\n"
              "stop: {max_iterations: 1}\nprotect: [checker.py, traced.py]\n")  # the checkers: no place to fix
    loop_cli("run", spec(write, "- tools:\n    - read_file: {path: server.py}\n", checks))
    report = context_units(run_folder(Path("runs")))[0]["messages"][0]["content"]
    health = report[report.index("## health"):report.index("## traced")]
    assert health.endswith('```\n[`{\'error\': \'not found\'}` in this output comes from server.py line 4: '
                           '`return 404, {"error": "not found"}`.]\n\n')
    assert "comes from" not in report[report.index("## traced"):]  # it names its place itself


def test_an_edit_that_changed_nothing_is_shown_the_line_the_report_still_points_at(write, loop_cli):
    # A rename half done: the model fixed the call, and repeats that edit while the import is left.
    write("shop.py", "from users import get_usr\n\n\nprint(get_usr(1))\n")
    write("server.py", 'def reply(path):\n    return 200, {"error": "not found"}\n')
    write("checker.py", "print(\"GET /health -> 200 {'error': 'not found'}\")\nraise SystemExit(1)\n")
    checks = ("verify:\n  at_start: true\n  checks:\n    - {name: gone, file: {path: shop.py, not_contains: get_usr}}\n"
              "    - {name: health, run: python3 checker.py}\n"
              "stop: {max_iterations: 1}\nprotect: [checker.py]\n")
    path = spec(write, """
        - tools:
            - edit_file: {path: shop.py, old: "get_usr(1)", new: "get_user(1)"}
            - edit_file: {path: shop.py, old: "get_usr(1)", new: "get_user(1)"}
            - edit_file: {path: server.py, old: "return 200, {", new: "return 200, {"}
            - edit_file: {path: server.py, old: "return 200", new: "    return 200"}
            - edit_file: {path: shop.py, old: "print(get_user(1))", new: "print(get_user(2))"}
        """, checks)
    outputs = _edit_outputs(path, loop_cli)
    assert "points at" not in outputs[0]  # the edit changed the file
    assert "made before" in outputs[1] and outputs[1].endswith(
        "\n[That edit is in place, but the work is not done: the latest check report points at shop.py line 1, "
        "which reads `from users import get_usr`. Edit that line next, to what the objective needs it to read.]")
    for same in outputs[2:4]:  # the same text, or the same but for the indentation the line has
        assert "would change nothing" in same and same.endswith(
            '\n[The work is not done: the latest check report points at server.py line 2, which reads '
            '`return 200, {"error": "not found"}`. Edit that line next, to what the objective needs it to read.]')
    assert "edited shop.py" in outputs[4] and "points at" not in outputs[4]  # an edit that changed something


def test_edits_of_a_json_file_are_sent_to_its_trailing_comma_not_to_the_brace_after_it(write, loop_cli):
    # The parser names line 5 (`}`); the comma to remove ends line 4. Sent to line 5, a 1.5B model
    # replaced `}` with `}` until no_progress.
    write("settings.json", '{\n  "port": 8080,\n  "debug": false,\n  "database": "sqlite:///data.db",\n}\n')
    checks = ("verify:\n  at_start: true\n  checks:\n"
              "    - {name: kept, file: {path: settings.json, json: {port: 8080}}}\n"
              "stop: {max_iterations: 1}\n")
    path = spec(write, """
        - tools:
            - edit_file: {path: settings.json, old: "}", new: "}"}
            - edit_file: {path: settings.json, old: ",", new: ""}
        """, checks)
    outputs = _edit_outputs(path, loop_cli)
    assert "occurs 3 times" in outputs[1] and outputs[1].endswith(  # it took the first of the lines listed
        '\n[The latest check report points at line 4: change that one, with old "  \\"database\\": '
        '\\"sqlite:///data.db\\",", new "  \\"database\\": \\"sqlite:///data.db\\"".]')
    assert outputs[0].endswith("the latest check report points at settings.json line 4, which reads "
                               '`"database": "sqlite:///data.db",`. Edit that line next, to what the objective '
                               "needs it to read.]"), outputs[0]


def test_an_edit_that_swaps_back_an_earlier_one_is_told_it_goes_back_and_forth(write, loop_cli):
    write("server.py", "def reply():\n    return 404, {'error': 'not found'}\n")
    checks = "verify:\n  - {name: health, run: 'exit 1'}\nstop: {max_iterations: 2}\n"
    path = spec(write, """
        - tools:
            - edit_file: {path: server.py, old: "return 404", new: "return 200"}
        - tools:
            - edit_file: {path: server.py, old: "return 200", new: "return 404"}
            - edit_file: {path: server.py, old: "return 404", new: "return 200"}
        """, checks)
    outputs = _edit_outputs(path, loop_cli)
    assert "edited server.py" in outputs[0] and "undoes" not in outputs[0]
    for back in outputs[1:]:  # 200 -> 404 undoes the first; 404 -> 200 then undoes that one
        assert "edited server.py" in back and "[This edit undoes an earlier edit of yours" in back, back


def test_an_edit_that_puts_back_a_text_a_check_forbids_there_is_told_so(write, loop_cli):
    write("shop/orders.py", "from shop.users import get_usr\n\n\nprint(get_user(1))\n")
    write("notes.txt", "get_usr\n")
    checks = ("verify:\n  - {name: old-name-gone, file: {path: 'shop/*.py', not_contains: get_usr}}\n"
              "stop: {max_iterations: 1}\n")
    path = spec(write, """
        - tools:
            - edit_file: {path: shop/orders.py, old: "get_user(1)", new: "get_usr(1)"}
            - edit_file: {path: shop/orders.py, old: "get_usr(1)", new: "get_usr(2)"}
            - edit_file: {path: notes.txt, old: "get_usr", new: "get_usr get_usr"}
        """, checks)
    outputs = _edit_outputs(path, loop_cli)
    assert outputs[0].endswith("\n[This puts `get_usr` into shop/orders.py, which the check `old-name-gone` says must "
                               "not contain it: it moves away from the objective.]"), outputs[0]
    assert "moves away" not in outputs[1]  # it was there already: this edit did not bring it in
    assert "edited notes.txt" in outputs[2] and "moves away" not in outputs[2]  # a file the check does not cover
