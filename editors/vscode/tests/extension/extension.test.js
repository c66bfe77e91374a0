// extension.js against a stand-in for the VS Code API (fake-vscode.js): the commands it registers, how it
// starts the language server, what it says when resdsl is missing, and the stage diagram, drawn by a
// stand-in resdsl (fake-resdsl.js) and, when RESDSL_CLI is set (a JSON list, e.g. ["python", "-m",
// "resdsl"]; tests/test_editor_vscode.py sets it), by the real `resdsl draw`.
"use strict";

const assert = require("node:assert/strict");
const fs = require("fs");
const os = require("os");
const path = require("path");
const test = require("node:test");
const { documentOf, loadExtension } = require("./fake-vscode");

const ROOT = path.resolve(__dirname, "..", "..");
const EXTENSION = path.join(ROOT, "extension.js");
const MANIFEST = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
const FAKE_RESDSL = path.join(__dirname, "fake-resdsl.js");
const SPECS = path.resolve(ROOT, "..", "..", "specs");

function temporaryDirectory(t) {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), "resdsl-extension-test-"));
  t.after(() => fs.rmSync(directory, { recursive: true, force: true }));
  return directory;
}

async function activated(settings = {}) {
  const loaded = loadExtension(EXTENSION);
  Object.assign(loaded.state.settings, settings);
  await loaded.extension.activate(loaded.context);
  return loaded;
}

function svgOf(html) {
  const match = html.match(/src="data:image\/svg\+xml;base64,([A-Za-z0-9+/=]+)"/);
  return match ? Buffer.from(match[1], "base64").toString("utf8") : null;
}

test("every command the manifest declares is registered, and nothing else", async () => {
  const { state } = await activated({ "resdsl.server.command": [process.execPath, "--version"] });
  const declared = MANIFEST.contributes.commands.map((c) => c.command).sort();
  assert.deepEqual([...state.commands.keys()].sort(), declared);
  assert.deepEqual(declared, ["resdsl.restartServer", "resdsl.showStageDiagram"]);
});

test("the server starts from resdsl.server.command on stdio, with the inlay hint setting", async () => {
  const { state } = await activated({ "resdsl.server.command": [process.execPath, "server.js", "lsp"] });
  assert.equal(state.clients.length, 1);
  const [client] = state.clients;
  assert.equal(client.id, "resdsl");
  assert.deepEqual(client.serverOptions.command, process.execPath);
  assert.deepEqual(client.serverOptions.args, ["server.js", "lsp"]);
  assert.equal(client.serverOptions.transport, undefined); // stdio, without an added --stdio
  assert.deepEqual(client.clientOptions.initializationOptions, { inlayHints: true });
  assert.deepEqual(client.clientOptions.documentSelector.map((s) => s.language), ["res", "res"]);
  assert.equal(client.started, 1);
  assert.deepEqual(state.errors, []);
});

test("resdsl.inlayHints.enabled = false reaches the server, and changing it restarts the server", async () => {
  const { state } = await activated({
    "resdsl.server.command": [process.execPath, "lsp"], "resdsl.inlayHints.enabled": false });
  assert.deepEqual(state.clients[0].clientOptions.initializationOptions, { inlayHints: false });
  state.settings["resdsl.inlayHints.enabled"] = true;
  await state.configuration.fire({ affectsConfiguration: (name) => name === "resdsl.inlayHints.enabled" });
  assert.equal(state.clients.length, 2);
  assert.equal(state.clients[0].stopped, 1);
  assert.deepEqual(state.clients[1].clientOptions.initializationOptions, { inlayHints: true });
  await state.configuration.fire({ affectsConfiguration: (name) => name === "editor.fontSize" });
  assert.equal(state.clients.length, 2);
  await state.commands.get("resdsl.restartServer")();
  assert.equal(state.clients.length, 3);
  assert.equal(state.clients[1].stopped, 1);
});

test("a missing resdsl is a message that says how to install it, not a spawn error", async () => {
  const { state } = await activated({ "resdsl.server.command": ["resdsl-not-installed-anywhere", "lsp"] });
  assert.equal(state.clients.length, 0);
  assert.equal(state.errors.length, 1);
  assert.match(state.errors[0], /`resdsl-not-installed-anywhere` was not found/);
  assert.match(state.errors[0], /pip install resdsl/);
  assert.match(state.errors[0], /resdsl\.server\.command/);
});

test("a program named without a path is looked up on PATH and started from where it was found", async () => {
  const { state } = await activated({ "resdsl.server.command": ["node", "server.js"] });
  const command = state.clients[0].serverOptions.command;
  assert.ok(path.isAbsolute(command) && fs.statSync(command).isFile(), command);
  assert.match(path.basename(command), /^node/);
});

test("without resdsl the diagram panel says how to install it", async (t) => {
  const directory = temporaryDirectory(t);
  const file = path.join(directory, "tiny.res");
  fs.writeFileSync(file, "network tiny {\n    input 8\n}\n");
  const { state } = await activated({ "resdsl.server.command": ["resdsl-not-installed-anywhere", "lsp"] });
  state.activeTextEditor = { document: documentOf(file, fs.readFileSync(file, "utf8")) };
  await state.commands.get("resdsl.showStageDiagram")();
  assert.match(state.panels[0].webview.html, /pip install resdsl/);
});

test("the default server command is resdsl lsp, and the diagram runs resdsl draw", async () => {
  const loaded = loadExtension(EXTENSION);
  assert.deepEqual(loaded.extension.serverCommand(), ["resdsl", "lsp"]);
  assert.deepEqual(loaded.extension.cliCommand(), ["resdsl"]);
  Object.assign(loaded.state.settings, { "resdsl.server.command": ["/venv/bin/python", "-m", "resdsl", "lsp"] });
  assert.deepEqual(loaded.extension.cliCommand(), ["/venv/bin/python", "-m", "resdsl"]);
});

test("the stage diagram: resdsl draw FILE --level stage -o SVG, shown beside, redrawn on save", async (t) => {
  const directory = temporaryDirectory(t);
  const log = path.join(directory, "calls.json");
  process.env.FAKE_RESDSL_LOG = log;
  t.after(() => delete process.env.FAKE_RESDSL_LOG);
  const file = path.join(directory, "my net.res");
  fs.writeFileSync(file, "network tiny {\n    input 3x8x8\n    relu\n}\n");
  const { state, extension } = await activated({ "resdsl.server.command": [process.execPath, FAKE_RESDSL, "lsp"] });
  const document = documentOf(file, fs.readFileSync(file, "utf8"));
  state.activeTextEditor = { document };

  await state.commands.get("resdsl.showStageDiagram")();
  assert.equal(state.panels.length, 1);
  const [panel] = state.panels;
  assert.equal(panel.showOptions.viewColumn, -2); // beside the editor
  assert.equal(panel.title, "Stages: my net.res");
  assert.equal(panel.options.enableScripts, false);
  assert.match(svgOf(panel.webview.html), /call 1/);
  let calls = JSON.parse(fs.readFileSync(log, "utf8"));
  const [first] = calls;
  assert.deepEqual(first.args.slice(0, 5), ["draw", file, "--level", "stage", "-o"]);
  assert.match(first.args[5], /\.svg$/);
  assert.equal(first.args.length, 6);
  assert.equal(first.cwd, directory);

  await state.saved.fire(document);
  assert.match(svgOf(panel.webview.html), /call 2/);
  await state.saved.fire(documentOf(path.join(directory, "other.res"), "")); // no panel: not drawn
  calls = JSON.parse(fs.readFileSync(log, "utf8"));
  assert.equal(calls.length, 2);

  await state.commands.get("resdsl.showStageDiagram")(); // the same file: the same panel, revealed
  assert.equal(state.panels.length, 1);
  assert.equal(panel.revealed, 1);

  const svgDirectory = path.dirname(first.args[5]);
  assert.ok(fs.existsSync(svgDirectory));
  panel.dispose();
  assert.ok(!fs.existsSync(svgDirectory), "closing the panel removes its temporary directory");
  await extension.deactivate();
});

test("the stage diagram shows resdsl's error when the spec is refused", async (t) => {
  const directory = temporaryDirectory(t);
  const file = path.join(directory, "bad.res");
  fs.writeFileSync(file, "network bad {\n    input 3x8x8\n    FAIL\n}\n");
  const { state } = await activated({ "resdsl.server.command": [process.execPath, FAKE_RESDSL, "lsp"] });
  state.activeTextEditor = { document: documentOf(file, fs.readFileSync(file, "utf8")) };
  await state.commands.get("resdsl.showStageDiagram")();
  const html = state.panels[0].webview.html;
  assert.equal(svgOf(html), null);
  assert.match(html, /error\[E0201\]: unknown name `FAIL` &lt;here&gt;/);
  assert.match(html, /bad\.res:3:5/);
  assert.match(html, /failed:/);
});

test("a file with several networks asks which one, and passes --network", async (t) => {
  const directory = temporaryDirectory(t);
  const log = path.join(directory, "calls.json");
  process.env.FAKE_RESDSL_LOG = log;
  t.after(() => delete process.env.FAKE_RESDSL_LOG);
  const file = path.join(directory, "two.res.d.res");
  fs.writeFileSync(file, "network small {\n    input 8\n}\n\nnetwork big(w = 2) {\n    input 16\n}\n");
  const { state } = await activated({ "resdsl.server.command": [process.execPath, FAKE_RESDSL, "lsp"] });
  state.pickAnswer = "big";
  const document = documentOf(file, fs.readFileSync(file, "utf8"));
  state.activeTextEditor = { document };
  await state.commands.get("resdsl.showStageDiagram")();
  assert.deepEqual(state.quickPicks[0].items, ["small", "big"]);
  const calls = JSON.parse(fs.readFileSync(log, "utf8"));
  assert.deepEqual(calls[0].args.slice(-2), ["--network", "big"]);
  await state.saved.fire(document); // the choice is kept for the redraw
  assert.equal(state.quickPicks.length, 1);
  assert.deepEqual(JSON.parse(fs.readFileSync(log, "utf8"))[1].args.slice(-2), ["--network", "big"]);
});

test("the stage diagram needs a saved .res file", async () => {
  const { state } = await activated({ "resdsl.server.command": [process.execPath, FAKE_RESDSL, "lsp"] });
  state.activeTextEditor = { document: documentOf("Untitled-1", "", { isUntitled: true }) };
  await state.commands.get("resdsl.showStageDiagram")();
  state.activeTextEditor = { document: documentOf("/tmp/x.py", "", { languageId: "python" }) };
  await state.commands.get("resdsl.showStageDiagram")();
  assert.equal(state.panels.length, 0);
  assert.match(state.errors[0], /save the file first/);
  assert.match(state.errors[1], /open a \.res file/);
});

test("the real resdsl draws a bundled spec's stages (RESDSL_CLI)", { skip: !process.env.RESDSL_CLI && "RESDSL_CLI is not set" },
  async (t) => {
    const cli = JSON.parse(process.env.RESDSL_CLI);
    const directory = temporaryDirectory(t);
    const file = path.join(directory, "resnet18.res");
    // a copy next to the family files it uses, so that the spec is resolved as in the repository
    for (const name of ["resnet18.res", "resnet.res", "blocks.res"]) {
      fs.copyFileSync(path.join(SPECS, name), path.join(directory, name));
    }
    const { state } = await activated({ "resdsl.server.command": [...cli, "lsp"] });
    state.activeTextEditor = { document: documentOf(file, fs.readFileSync(file, "utf8")) };
    await state.commands.get("resdsl.showStageDiagram")();
    const svg = svgOf(state.panels[0].webview.html);
    assert.ok(svg, state.panels[0].webview.html.slice(0, 2000));
    assert.match(svg, /<svg/);
    assert.match(svg, /layer4/);

    fs.writeFileSync(file, "use \"resnet.res\"\nnetwork resnet18 = resnet(depth = 18, nope = 1)\n");
    await state.saved.fire(documentOf(file, fs.readFileSync(file, "utf8")));
    const html = state.panels[0].webview.html;
    assert.equal(svgOf(html), null);
    assert.match(html, /nope/);
    assert.match(html, /E\d{4}/);
  });
