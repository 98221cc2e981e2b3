"""edit_file forgives the other kind of quote (tools/matching.py `requoted`) where that is unambiguous, and
no edit or write leaves a Python or JSON file that parsed unable to parse (tools/syntax.py)."""

from test_tools import box, call  # noqa: F401 - box is a fixture

INVENTORY = 'def total(items):\n    count = item["quantity"]\n    return item["price"]\n'


def test_single_quotes_for_the_files_double_ones_are_forgiven_and_new_follows_the_file(box, tmp_path):  # noqa: F811
    (tmp_path / "work/inv.py").write_text(INVENTORY)
    result = call(box, "edit_file", path="inv.py", old="    count = item['quantity']\n", new="")
    assert result.ok and 'with " for quotes' in result.output
    assert (tmp_path / "work/inv.py").read_text() == 'def total(items):\n    return item["price"]\n'
    swapped = call(box, "edit_file", path="inv.py", old="return item['price']", new="return item['price'] * 2")
    assert swapped.ok and 'return item["price"] * 2' in (tmp_path / "work/inv.py").read_text()


def test_json_written_with_single_quotes_matches_and_stays_json(box, tmp_path):  # noqa: F811
    (tmp_path / "work/s.json").write_text('{\n  "port": "8080",\n  "debug": "no"\n}\n')
    result = call(box, "edit_file", path="s.json", old="'port': '8080',\n  'debug': 'no'",
                  new="'port': 8080, 'debug': false")
    assert result.ok, result.output
    assert (tmp_path / "work/s.json").read_text() == '{\n  "port": 8080, "debug": false\n}\n'


def test_no_quote_is_turned_where_that_would_change_what_new_says_or_the_place_is_not_unique(box, tmp_path):  # noqa: F811
    work = tmp_path / "work"
    (work / "q.py").write_text('a = "x"\nb = "x"\nc = "y"\n')
    for old, new in (("= 'x'", "= 'z'"),  # two places
                     ("c = 'y'", "c = 'it\"s'"),  # new has the file's kind already: turning it would change it
                     ("c = 'y\"", "c = 'z'")):  # old has both kinds
        result = call(box, "edit_file", path="q.py", old=old, new=new)
        assert not result.ok and "not found" in result.output, (old, result.output)
    assert (work / "q.py").read_text() == 'a = "x"\nb = "x"\nc = "y"\n'
    again = call(box, "edit_file", path="q.py", old="c = 'y'", new="c = 'y'")
    assert again.ok and "nothing changed" in again.output


def test_an_edit_that_would_break_python_is_refused_with_the_lines_it_would_leave(box, tmp_path):  # noqa: F811
    (tmp_path / "work/inv.py").write_text(INVENTORY)
    result = call(box, "edit_file", path="inv.py", old='return item["price"]', new='return item["price"')
    assert not result.ok and "invalid Python" in result.output and "line 3" in result.output
    assert '   3 |     return item["price"' in result.output and "file is unchanged" in result.output
    assert (tmp_path / "work/inv.py").read_text() == INVENTORY
    loose = call(box, "edit_file", path="inv.py", old="count = item['quantity']", new="count = (")  # a loose match too
    assert not loose.ok and "invalid Python" in loose.output and (tmp_path / "work/inv.py").read_text() == INVENTORY
    assert call(box, "edit_file", path="inv.py", old='return item["price"]', new="return 0").ok


def test_deleting_part_of_a_line_that_leaves_it_invalid_is_told_how_to_delete_the_line(box, tmp_path):  # noqa: F811
    work = tmp_path / "work"
    (work / "inv.py").write_text("import os\nimport sys\n\nif sys:\n    import re\n")
    part = call(box, "edit_file", path="inv.py", old="os", new="")  # `import ` is left
    assert not part.ok and "invalid Python" in part.output
    assert part.output.endswith("To delete line 1 whole, put all of it in `old` (`import os`) and leave `new` empty.")
    alone = call(box, "edit_file", path="inv.py", old="re", new="")  # `if sys:` would be left with no body
    assert not alone.ok and "To delete" not in alone.output
    other = call(box, "edit_file", path="inv.py", old="import sys", new="import (")  # not a deletion
    assert not other.ok and "To delete" not in other.output
    assert call(box, "edit_file", path="inv.py", old="import os\n", new="").ok  # as told


STUB = 'def slugify(title):\n    """A URL slug."""\n    raise NotImplementedError\n'


def test_a_function_written_in_place_of_its_placeholder_is_read_as_its_body(box, tmp_path):  # noqa: F811
    work = tmp_path / "work"
    for new, how in (("def slugify(title):\n    words = title.split()\n    return '-'.join(words)",  # its own def
                      "without `def slugify(title):`, which it is in already"),
                     ("words = title.split()\nreturn '-'.join(words)",  # from column 0: only line 1 would be indented
                      "with its lines indented like the first")):
        (work / "text.py").write_text(STUB)
        result = call(box, "edit_file", path="text.py", old="raise NotImplementedError", new=new)
        assert result.ok and f"`new` was read {how}" in result.output, result.output
        assert (work / "text.py").read_text() == STUB.replace(
            "    raise NotImplementedError", "    words = title.split()\n    return '-'.join(words)")
    (work / "text.py").write_text(STUB)
    indented = call(box, "edit_file", path="text.py", old="raise NotImplementedError",
                    new="    words = title.split()\n    return '-'.join(words)")  # the indentation twice: none in old
    assert indented.ok and "`new` was read without the indentation it repeats" in indented.output
    assert (work / "text.py").read_text() == STUB.replace(
        "    raise NotImplementedError", "    words = title.split()\n    return '-'.join(words)")
    (work / "text.py").write_text(STUB)
    inline = call(box, "edit_file", path="text.py", old="raise NotImplementedError",
                  new="def slugify(title):    return title.lower()")  # the def and its body on one line
    assert inline.ok and "without `def slugify(title):`" in inline.output
    assert (work / "text.py").read_text() == STUB.replace("raise NotImplementedError", "return title.lower()")
    (work / "text.py").write_text(STUB)
    other = call(box, "edit_file", path="text.py", old="raise NotImplementedError", new="return title\nprint(1)")
    assert other.ok and "was read" not in other.output  # it parses as written (a module-level print): as written
    (work / "flat.py").write_text("x = 1\n")
    outside = call(box, "edit_file", path="flat.py", old="x = 1", new="return 1")  # parses, does not compile
    assert not outside.ok and "'return' outside function" in outside.output
    assert (work / "flat.py").read_text() == "x = 1\n"


def test_writes_are_refused_only_when_they_break_a_file_that_parsed(box, tmp_path):  # noqa: F811
    work = tmp_path / "work"
    (work / "s.json").write_text('{"port": 8080}\n')
    broken = call(box, "write_file", path="s.json", content='{"port": 8080,}\n')
    assert not broken.ok and "invalid JSON" in broken.output and (work / "s.json").read_text() == '{"port": 8080}\n'
    assert "In it, line 1 `{\"port\": 8080,}` ends with a comma after the last item" in broken.output
    (work / "s.json").write_text('{\n  "port": 8080,\n  "debug": "no"\n}\n')
    dropped = call(box, "edit_file", path="s.json", old='"port": 8080,', new='"port": 8080')  # the comma between
    assert not dropped.ok and "In it, line 2 `\"port\": 8080` needs a comma at its end" in dropped.output
    assert call(box, "write_file", path="new.py", content="def f(:\n").ok  # no file before: nothing it breaks
    assert call(box, "edit_file", path="new.py", old="def f(:", new="def f(:\n    pass").ok  # mending, step by step
    assert call(box, "write_file", path="notes.txt", content="(").ok
    assert call(box, "edit_file", path="notes.txt", old="(", new="((").ok  # other kinds are not parsed


def test_the_guard_survives_what_an_adversarial_agent_writes(box, tmp_path):  # noqa: F811
    work = tmp_path / "work"
    (work / "deep.json").write_text("[]")
    (work / "deep.py").write_text("x = 1\n")
    nested = call(box, "write_file", path="deep.json", content="[" * 200_000 + "]" * 200_000)  # too deep to parse
    assert nested.ok  # not known to be broken: written, and the runner lives on
    deep_py = call(box, "write_file", path="deep.py", content="x = " + "(" * 100_000 + ")" * 100_000 + "\n")
    assert not deep_py.ok and "invalid Python" in deep_py.output  # the parser refuses the nesting itself
    assert (work / "deep.py").read_text() == "x = 1\n"


def test_a_line_written_whole_in_place_of_its_start_replaces_the_whole_line(box, tmp_path):  # noqa: F811
    work = tmp_path / "work"
    server = 'def get(self):\n    self.send_json(404, {"error": "not found"})\n'
    (work / "server.py").write_text(server)
    whole = call(box, "edit_file", path="server.py", old="self.send_json(404, {",
                 new="self.send_json(200, {'status': 'ok'})")  # as written: `"error": "not found"})` left after it
    assert whole.ok and ("`new` was read as the whole line from `old` on, which it ends: the rest, "
                         '`"error": "not found"})`, would not parse after it') in whole.output, whole.output
    assert (work / "server.py").read_text() == "def get(self):\n    self.send_json(200, {'status': 'ok'})\n"
    (work / "server.py").write_text(server)
    start = call(box, "edit_file", path="server.py", old="self.send_json(404, {", new="self.send_json(200, {")
    assert start.ok and "was read" not in start.output  # it parses as written
    broken = call(box, "edit_file", path="server.py", old="self.send_json(200, {", new="self.send_json(200, {{")
    assert not broken.ok and "invalid Python" in broken.output  # neither reading parses: refused as before
