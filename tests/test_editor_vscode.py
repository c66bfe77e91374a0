"""The VS Code extension (editors/vscode) and docs/editors.md.

The fast tests need no Node: the TextMate grammar against resdsl's own registries and grammars/resdsl.lark
(its regexes compiled with Python's `re`), the manifest, the language configuration, and the snippets of
docs/editors.md. The slow one installs the extension's npm packages in a copy of the folder, runs its
tests (grammar assertions, snapshots, every bundled spec, the extension on a stand-in VS Code API and the
real `resdsl draw`), builds the .vsix and looks inside it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from resdsl import values
from resdsl.functions import FUNCTIONS
from resdsl.ops import OPS
from resdsl.version import __version__

ROOT = Path(__file__).resolve().parent.parent
EXTENSION = ROOT / "editors" / "vscode"
GRAMMAR_FILE = EXTENSION / "syntaxes" / "res.tmLanguage.json"
LARK = ROOT / "grammars" / "resdsl.lark"
DOC = ROOT / "docs" / "editors.md"


def load_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


GRAMMAR = load_json(GRAMMAR_FILE)
MANIFEST = load_json(EXTENSION / "package.json")
REPOSITORY = GRAMMAR["repository"]


def lark_keywords() -> list[str]:
    """The words grammars/resdsl.lark spells as literals, and its SECTION words (stem, head)."""
    text = LARK.read_text(encoding="utf-8")
    section = re.search(r"SECTION[.0-9]*: /\((\w+(?:\|\w+)*)\)", text)
    assert section, "SECTION is no longer written /(stem|head).../ in grammars/resdsl.lark"
    return sorted(set(re.findall(r'"([a-z]+)"', text)) | set(section.group(1).split("|")))


def lark_terminal(name: str) -> re.Pattern:
    match = re.search(rf"^{name}(?:\.\d+)?: /(.+)/$", LARK.read_text(encoding="utf-8"), re.M)
    assert match, f"terminal {name} not found in grammars/resdsl.lark"
    return re.compile(match.group(1))


def expected_vocabulary() -> dict[str, list[str]]:
    """What tests/grammar/vocabulary.json must say: the words each kind of scope is for, from resdsl."""
    return {
        "keywords": lark_keywords(),
        "ops": sorted(OPS),
        "builtins": sorted(FUNCTIONS),
        "policies": sorted(p for p in values.POLICIES if p not in OPS),  # `identity` is an op as well
        "modes": sorted(set(values.RESAMPLE_MODES) | (set(values.GELU_FORMS) - set(values.POLICIES))),
        "merges": sorted(values.BRANCH_MERGES),
        "flags": sorted({option.name for kind in OPS.values() for option in kind.options if option.flag}),
    }


def rules(node: object):
    """Every rule (a dict with match, begin or end) anywhere in the grammar."""
    if isinstance(node, dict):
        if any(key in node for key in ("match", "begin", "end")):
            yield node
        for value in node.values():
            yield from rules(value)
    elif isinstance(node, list):
        for item in node:
            yield from rules(item)


def compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def matcher(rule_path: str, scope: str | None = None) -> re.Pattern:
    """The regex of the repository rule `rule_path` (or of its sub-pattern named `scope`)."""
    rule = REPOSITORY[rule_path]
    if scope is not None:
        rule = next(r for r in rule["patterns"] if r.get("name") == scope)
    return compiled(rule.get("match") or rule["begin"])


def whole_word_matches(pattern: re.Pattern, word: str) -> bool:
    found = pattern.search(f" {word} ")
    return bool(found) and found.group(0).strip() == word


# ---- the grammar ----


def test_the_grammar_is_source_res_and_its_includes_resolve():
    assert GRAMMAR["scopeName"] == "source.res"
    includes = re.findall(r'"include": "#([\w-]+)"', GRAMMAR_FILE.read_text(encoding="utf-8"))
    assert includes and not set(includes) - set(REPOSITORY)
    unused = set(REPOSITORY) - set(includes)
    assert not unused, f"repository rules no pattern includes: {sorted(unused)}"
    for rule in rules(GRAMMAR):
        for key in ("name", "contentName"):
            if key in rule:
                assert all(part.endswith(".res") for part in rule[key].split() if not part.startswith("-"))


def test_the_grammars_regexes_compile():
    """Every regex compiles with Python's `re` (`\\G`, TextMate's "where the enclosing rule began", read as
    `\\A`), but the element rule's lookbehind of several widths, which Oniguruma, VS Code's engine, takes
    (the npm tests run every rule on Oniguruma)."""
    failed = []
    for rule in rules(GRAMMAR):
        for key in ("match", "begin", "end"):
            if key in rule:
                try:
                    re.compile(rule[key].replace("\\G", "\\A"))
                except re.error as error:
                    failed.append((rule[key][:60], str(error)))
    assert [reason for _, reason in failed] == ["look-behind requires fixed-width pattern"], failed
    assert failed[0][0] == REPOSITORY["element"]["match"][:60]


def test_the_vocabulary_file_is_resdsls():
    """tests/grammar/vocabulary.json, which the Node checks read, lists what resdsl defines today."""
    written = load_json(EXTENSION / "tests" / "grammar" / "vocabulary.json")
    assert written == expected_vocabulary(), "regenerate editors/vscode/tests/grammar/vocabulary.json:\n" + json.dumps(
        expected_vocabulary(), indent=2
    )


def test_every_op_kind_is_a_support_function_and_no_longer_name_is():
    op = matcher("op")
    call = next(r for r in REPOSITORY["call"]["patterns"] if "support.function.op.res" in json.dumps(r))
    call_regex = compiled(call["begin"])
    for name in OPS:
        assert whole_word_matches(op, name), name
        assert call_regex.match(f"{name}(16)"), name
        for longer in (f"{name}1", f"{name}_x", f"my_{name}"):
            assert not whole_word_matches(op, longer) and not op.search(f" {longer} "), longer
    assert REPOSITORY["op"]["name"] == "support.function.op.res"


def test_every_builtin_function_is_a_support_function_builtin():
    builtin = next(r for r in REPOSITORY["call"]["patterns"] if "support.function.builtin.res" in json.dumps(r))
    regex = compiled(builtin["begin"])
    for name in FUNCTIONS:
        found = regex.match(f"{name}(x)")
        assert found and found.group(1) == name, name
        assert not regex.match(f"{name}x(1)")


def test_every_keyword_of_the_lark_grammar_has_a_keyword_scope():
    keyword_rules = [(compiled(r["match"]), r["name"]) for r in REPOSITORY["keyword"]["patterns"]]
    for word in lark_keywords():
        scopes = [name for regex, name in keyword_rules if whole_word_matches(regex, word)]
        assert scopes, f"`{word}` (grammars/resdsl.lark) has no scope in the grammar's keyword rules"
        assert scopes[0].split(".")[0] in {"keyword", "storage", "constant"}, (word, scopes)
        assert not any(whole_word_matches(regex, word + "s") for regex, _ in keyword_rules), word


def test_policies_modes_merges_and_flags_are_constants():
    vocabulary = expected_vocabulary()
    for kind in ("policies", "modes", "merges", "flags"):
        scope = {"policies": "policy", "modes": "mode", "merges": "merge", "flags": "flag"}[kind]
        regex = matcher("constant", f"support.constant.{scope}.res")
        for word in vocabulary[kind]:
            assert whole_word_matches(regex, word), (kind, word)
            assert not whole_word_matches(regex, word + "_"), (kind, word)


def test_the_lexers_shorthands_repeats_shapes_and_numbers_are_the_grammars():
    """The grammar's regexes accept exactly the tokens resdsl's lexer (grammars/resdsl.lark) does."""
    short, repeat, shape = lark_terminal("SHORT"), lark_terminal("REPEAT"), lark_terminal("SHAPE")
    floats, ints = lark_terminal("FLOAT"), lark_terminal("INT")
    samples = [f"{letter}{digits}" for letter in "abcdefghijklmnopqrstuvwxyz" for digits in ("1", "32")]
    samples += ["k3x", "s2_", "x3a", "k", "x", "3x224x224", "64x64", "3x", "x3x3", "16", "1.5", "1e-6", "2E+3", "1."]
    grammar = {
        "shorthand": compiled(REPOSITORY["shorthand"]["match"]),
        "repeat": compiled(REPOSITORY["repeat"]["match"]),
        "shape": compiled(REPOSITORY["shape"]["match"]),
        "float": matcher("number", "constant.numeric.float.res"),
        "int": matcher("number", "constant.numeric.integer.res"),
    }
    lexer = {"shorthand": short, "repeat": repeat, "shape": shape, "float": floats, "int": ints}
    for sample in samples:
        for kind, regex in grammar.items():
            ours = regex.fullmatch(sample) is not None
            theirs = lexer[kind].fullmatch(sample) is not None
            assert ours == theirs, (kind, sample, ours, theirs)
    assert compiled(REPOSITORY["shorthand"]["match"]).search("conv 16 k3 s2").group(0) == "k3"
    assert not compiled(REPOSITORY["shorthand"]["match"]).search("res2net")


def test_labels_groups_and_quoted_labels():
    label = compiled(REPOSITORY["label"]["patterns"][0]["match"])
    for line, expected in [
        ("layer1: unit(64) x 2", ["layer1"]),
        ("fpn.inner_blocks[3][0]: conv 16 k1", ["fpn", "inner_blocks"]),
        ('trunk_output.block1."block1-{repetition}": regnet_block(32) x 7', ["trunk_output", "block1"]),
        ("shortcut.conv: conv 8 k1 -> shortcut.bn: bn", ["shortcut", "conv", "shortcut", "bn"]),
        ("conv width k3 s=stride -> bn", []),
        ("output layer1, layer2", []),
    ]:
        assert label.findall(line) == expected, line
    group = compiled(REPOSITORY["group-name"]["patterns"][0]["match"])
    assert group.findall("trunk_output.block1 { conv 8 k1 }") == ["trunk_output", "block1"]
    assert group.findall("} shortcut {") == [] and group.findall("stem {") == [] and group.findall("else {") == []
    quoted = compiled(REPOSITORY["quoted-label"]["begin"])
    assert quoted.match('"block1-{repetition}": x') and quoted.match('"stem" {') and quoted.match('"s1"."b1": x')
    assert not quoted.match('"blocks.res"') and not quoted.match('"a message", 3')


# ---- the extension's manifest and configuration ----


def test_the_manifest_declares_the_language_grammar_commands_and_settings():
    assert (MANIFEST["name"], MANIFEST["publisher"], MANIFEST["license"]) == ("resdsl", "resdsl", "MIT")
    assert MANIFEST["version"] == __version__
    assert MANIFEST["repository"]["url"].startswith("https://github.com/")
    assert re.fullmatch(r"\^1\.\d+\.0", MANIFEST["engines"]["vscode"])
    assert (EXTENSION / MANIFEST["main"]).is_file()
    assert "onLanguage:res" in MANIFEST["activationEvents"]
    contributes = MANIFEST["contributes"]
    [language] = contributes["languages"]
    assert language["id"] == "res" and language["extensions"] == [".res"] and language["aliases"]
    assert (EXTENSION / language["configuration"]).is_file()
    [grammar] = contributes["grammars"]
    assert grammar["language"] == "res" and grammar["scopeName"] == GRAMMAR["scopeName"]
    assert (EXTENSION / grammar["path"]).resolve() == GRAMMAR_FILE
    titles = {c["command"]: f"{c['category']}: {c['title']}" for c in contributes["commands"]}
    assert titles == {
        "resdsl.showStageDiagram": "resdsl: Show Stage Diagram",
        "resdsl.restartServer": "resdsl: Restart Language Server",
    }
    source = (EXTENSION / MANIFEST["main"]).read_text(encoding="utf-8")
    assert set(re.findall(r'registerCommand\("([\w.]+)"', source)) == set(titles)
    settings = contributes["configuration"]["properties"]
    assert settings["resdsl.server.command"]["default"] == ["resdsl", "lsp"]
    assert settings["resdsl.inlayHints.enabled"]["default"] is True
    assert settings["resdsl.trace.server"]["enum"] == ["off", "messages", "verbose"]
    assert 'get("server.command")' in source and 'get("inlayHints.enabled", true)' in source
    assert "initializationOptions: { inlayHints:" in source
    assert "execFile(" in source and "shell: true" not in source  # the diagram runs resdsl without a shell
    assert '"draw", file, "--level", "stage", "-o", output' in source


def test_the_dependencies_run_on_node_20_and_the_vscode_the_manifest_names():
    lock = load_json(EXTENSION / "package-lock.json")
    packages = lock["packages"]
    assert packages[""]["dependencies"] == MANIFEST["dependencies"]
    assert packages[""]["devDependencies"] == MANIFEST["devDependencies"]
    assert packages["node_modules/@vscode/vsce"]["engines"]["node"] in {">= 20", ">=20"}
    client = packages["node_modules/vscode-languageclient"]
    assert not client.get("dev") and client["engines"]["vscode"] == MANIFEST["engines"]["vscode"]
    for tool in ("vscode-tmgrammar-test", "vscode-textmate", "vscode-oniguruma", "@vscode/vsce"):
        assert tool in MANIFEST["devDependencies"] and packages[f"node_modules/{tool}"]["dev"]


def test_the_language_configuration():
    configuration = load_json(EXTENSION / "language-configuration.json")
    assert configuration["comments"] == {"lineComment": "#"}
    assert configuration["brackets"] == [["{", "}"], ["[", "]"], ["(", ")"]]
    assert {pair["open"] for pair in configuration["autoClosingPairs"]} == {"{", "[", "(", '"'}
    increase = re.compile(configuration["indentationRules"]["increaseIndentPattern"])
    decrease = re.compile(configuration["indentationRules"]["decreaseIndentPattern"])
    for line in ["network tiny {", "    residual(project_kernel = 3) {", "    stem {   # the stem", '    "s1" {']:
        assert increase.search(line), line
    for line in ["    conv 8 k3", "    stem { relu }", '    require x, "a { in a string"', "    # a {", "}"]:
        assert not increase.search(line), line
    assert decrease.search("    }") and decrease.search("} else {") and not decrease.search("    relu")


def test_node_modules_and_vsix_files_are_ignored_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["editors/vscode/node_modules/x/index.js", "editors/vscode/resdsl-0.1.0.vsix"]
    result = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.split() == paths


# ---- docs/editors.md ----


def fenced(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.M | re.S)


def test_the_helix_configuration_parses():
    tomllib = pytest.importorskip("tomllib")
    [block] = fenced("toml")
    config = tomllib.loads(block)
    resdsl = next(language for language in config["language"] if language["name"] == "resdsl")
    assert resdsl["file-types"] == ["res"] and resdsl["comment-token"] == "#"
    assert resdsl["language-servers"] == ["resdsl"]
    assert resdsl["formatter"] == {"command": "resdsl", "args": ["fmt", "-"]}
    assert config["language-server"]["resdsl"] == {"command": "resdsl", "args": ["lsp"], "config": {"inlayHints": True}}


def test_the_vscode_settings_parse_and_are_the_extensions():
    [block] = fenced("json")
    settings = json.loads(block)
    declared = set(MANIFEST["contributes"]["configuration"]["properties"])
    ours = {key for key in settings if key.startswith("resdsl.")}
    assert ours == declared
    assert settings["[res]"]["editor.defaultFormatter"] == f"{MANIFEST['publisher']}.{MANIFEST['name']}"


def test_the_neovim_snippets_start_the_server_and_the_formatter():
    lua = "\n".join(fenced("lua"))
    assert 'vim.filetype.add({ extension = { res = "res" } })' in lua
    assert lua.count('cmd = { "resdsl", "lsp" }') == 2  # vim.lsp.config and lspconfig
    assert 'vim.lsp.enable("resdsl")' in lua and 'args = { "fmt", "-" }' in lua
    assert 'commentstring = "# %s"' in lua
    assert "cd editors/vscode && npm ci && npm run package && code --install-extension resdsl-0.1.0.vsix" in (
        DOC.read_text(encoding="utf-8")
    )


# ---- the npm side: tests, package, the .vsix ----


def npm(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(["npm", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"npm {' '.join(args)}:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.mark.slow  # npm ci (about 15 s with a warm npm cache), the tests, the package
def test_npm_tests_and_the_vsix(tmp_path):
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not on PATH: the extension's npm tests and package need Node.js 20+")
    # a copy of the extension beside the specs, so that nothing is written in the repository
    work = tmp_path / "editors" / "vscode"
    shutil.copytree(EXTENSION, work, ignore=shutil.ignore_patterns("node_modules", "*.vsix"))
    (tmp_path / "specs").symlink_to(ROOT / "specs", target_is_directory=True)
    env = dict(os.environ, RESDSL_CLI=json.dumps([sys.executable, "-m", "resdsl"]), NO_UPDATE_NOTIFIER="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    npm(["ci", "--no-audit", "--no-fund"], work, env)

    tested = npm(["test"], work, env)
    assert "run successfuly" in tested.stdout and "run successfully" in tested.stdout  # assertions, snapshots
    assert re.search(r"ok: 2\d\d spec\(s\), \d+ tokens", tested.stdout)  # every bundled spec
    assert "# fail 0" in tested.stdout and "# skipped 0" in tested.stdout  # the extension, the real draw too

    # the spec check does fail: an illegal character, an unterminated string
    bad = tmp_path / "bad.res"
    bad.write_text('network bad {\n    input 3x8x8\n    relu; gelu\n    require true, "open\n}\n')
    result = subprocess.run(
        ["node", "tests/grammar/check-specs.js", str(bad)], cwd=work, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "bad.res:3:9" in result.stderr and "invalid.illegal.character.res" in result.stderr
    assert "invalid.illegal.unclosed-string.res" in result.stderr

    # the docs' examples too, but those that show an error (docs/errors.md's, and `# error:` blocks)
    examples = tmp_path / "examples"
    examples.mkdir()
    for doc in sorted((ROOT / "docs").glob("*.md")):
        if doc.name == "errors.md":
            continue
        for index, block in enumerate(re.findall(r"^```res\n(.*?)^```", doc.read_text(encoding="utf-8"), re.M | re.S)):
            if not block.startswith("# error:"):
                (examples / f"{doc.stem}_{index:03d}.res").write_text(block, encoding="utf-8")
    files = sorted(str(path) for path in examples.iterdir())
    assert len(files) > 50
    result = subprocess.run(
        ["node", "tests/grammar/check-specs.js", *files], cwd=work, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr

    out = tmp_path / "out"
    out.mkdir()
    npm(["run", "package", "--", "--out", f"{out}{os.sep}"], work, env, timeout=300)
    vsix = out / f"resdsl-{__version__}.vsix"
    assert vsix.is_file()
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("extension/package.json"))
        contributes = manifest["contributes"]
        assert contributes["languages"][0]["id"] == "res" and contributes["languages"][0]["extensions"] == [".res"]
        grammar_path = "extension/" + contributes["grammars"][0]["path"].removeprefix("./")
        assert grammar_path in names
        assert json.loads(archive.read(grammar_path))["scopeName"] == contributes["grammars"][0]["scopeName"]
        assert "extension/" + contributes["languages"][0]["configuration"].removeprefix("./") in names
        main = "extension/" + manifest["main"].removeprefix("./")
        assert main in names
        source = archive.read(main).decode()
        for command in contributes["commands"]:
            assert f'registerCommand("{command["command"]}"' in source
        assert "extension/node_modules/vscode-languageclient/node.js" in names
        assert "extension/node_modules/vscode-jsonrpc/package.json" in names  # its dependencies too
        assert {"extension/LICENSE.txt", "extension/readme.md", "extension/changelog.md"} <= names
        assert not [n for n in names if "/tests/" in n and "node_modules" not in n], "tests are left out"
        assert not [n for n in names if n.startswith("extension/node_modules/@vscode/vsce")], "dev dependencies"
    assert vsix.stat().st_size < 1_000_000
