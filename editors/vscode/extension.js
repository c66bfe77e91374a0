// The resdsl extension: starts the language server (`resdsl lsp` on stdio, through vscode-languageclient)
// and shows a spec's stage diagram (`resdsl draw FILE --level stage`) in a webview beside the editor.
// Plain JavaScript, so that the extension needs no build step.
"use strict";

const childProcess = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const vscode = require("vscode");
const { LanguageClient, State } = require("vscode-languageclient/node");

const LANGUAGE = "res";
const SECTION = "resdsl";
const DRAW_TIMEOUT_MS = 120000;

let client = null;
let outputChannel = null;

// ---- finding the server ----

function serverCommand() {
  const command = vscode.workspace.getConfiguration(SECTION).get("server.command");
  if (!Array.isArray(command) || !command.length || command.some((part) => typeof part !== "string" || !part)) {
    return ["resdsl", "lsp"];
  }
  return command;
}

// The resdsl CLI for other subcommands: the server command without its final `lsp`.
function cliCommand() {
  const command = serverCommand();
  return command[command.length - 1] === "lsp" ? command.slice(0, -1) : ["resdsl"];
}

// Where `program` is: itself when it is a path, else the first match on PATH (with PATHEXT on Windows); null
// when it is nowhere, so that the user gets a message saying what to install instead of a spawn error.
function findProgram(program) {
  const extensions = process.platform === "win32"
    ? ["", ...(process.env.PATHEXT || ".EXE;.CMD;.BAT;.COM").split(";").filter(Boolean)] : [""];
  const existing = (candidate) => extensions.map((ext) => candidate + ext).find((file) => {
    try {
      return fs.statSync(file).isFile();
    } catch {
      return false;
    }
  }) || null;
  if (path.isAbsolute(program) || program.includes("/") || program.includes("\\")) {
    return existing(path.resolve(workspaceRoot() || process.cwd(), program));
  }
  for (const dir of (process.env.PATH || "").split(path.delimiter).filter(Boolean)) {
    const found = existing(path.join(dir, program));
    if (found) return found;
  }
  return null;
}

function workspaceRoot() {
  const folders = vscode.workspace.workspaceFolders;
  return folders && folders.length ? folders[0].uri.fsPath : null;
}

function notFoundMessage(program) {
  return `resdsl: \`${program}\` was not found, so the language server cannot start. ` +
    "Install resdsl where VS Code can find it (`pip install resdsl`, in the environment on VS Code's PATH), " +
    "or set `resdsl.server.command` to its full path (e.g. [\"/path/to/.venv/bin/resdsl\", \"lsp\"]).";
}

async function showNotFound(program) {
  const choice = await vscode.window.showErrorMessage(notFoundMessage(program), "Open Settings");
  if (choice === "Open Settings") {
    await vscode.commands.executeCommand("workbench.action.openSettings", "resdsl.server.command");
  }
}

// ---- the language client ----

async function startClient(context) {
  const [program, ...args] = serverCommand();
  const found = findProgram(program);
  if (!found) {
    showNotFound(program);
    return;
  }
  const settings = vscode.workspace.getConfiguration(SECTION);
  const serverOptions = { command: found, args, options: { cwd: workspaceRoot() || undefined } };
  const clientOptions = {
    documentSelector: [
      { scheme: "file", language: LANGUAGE },
      { scheme: "untitled", language: LANGUAGE },
    ],
    initializationOptions: { inlayHints: settings.get("inlayHints.enabled", true) },
    // a `use`d file that changes on disk changes the diagnostics of the files that use it
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.res") },
    outputChannel,
  };
  client = new LanguageClient(SECTION, "resdsl language server", serverOptions, clientOptions);
  try {
    await client.start();
  } catch (error) {
    const message = error && error.message ? error.message : String(error);
    outputChannel.appendLine(`resdsl: the language server failed to start: ${message}`);
    vscode.window.showErrorMessage(
      `resdsl: \`${[program, ...args].join(" ")}\` failed to start the language server (${message}). ` +
      "A resdsl with the `lsp` command is needed (`pip install --upgrade resdsl`); the resdsl output has the details.");
  }
}

async function stopClient() {
  const running = client;
  client = null;
  if (running && running.state !== State.Stopped) {
    try {
      await running.stop();
    } catch (error) {
      outputChannel.appendLine(`resdsl: stopping the language server: ${error}`);
    }
  }
}

async function restartClient(context) {
  await stopClient();
  await startClient(context);
}

// ---- the stage diagram ----

// One panel per file: fsPath -> {panel, directory, network}.
const diagrams = new Map();

function escapeHtml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function page(title, body) {
  // no scripts; the SVG is shown as an image (a data: URI), which cannot run any either
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline';">
<title>${escapeHtml(title)}</title>
<style>
  body { padding: 8px; color: var(--vscode-foreground); font-family: var(--vscode-font-family); }
  img { max-width: 100%; background: white; }
  pre { white-space: pre-wrap; color: var(--vscode-errorForeground); font-family: var(--vscode-editor-font-family); }
  .note { color: var(--vscode-descriptionForeground); }
</style></head><body>${body}</body></html>`;
}

// The networks a file defines, from its text (the server is not needed for this).
function networksOf(text) {
  return [...text.matchAll(/^[ \t]*network[ \t]+([A-Za-z_][A-Za-z0-9_]*)/gm)].map((m) => m[1]);
}

async function chooseNetwork(document, entry) {
  const networks = networksOf(document.getText());
  const stem = path.basename(document.fileName, ".res");
  if (networks.length <= 1 || networks.includes(stem)) return null; // resdsl picks it
  if (entry.network && networks.includes(entry.network)) return entry.network;
  const picked = await vscode.window.showQuickPick(networks, { placeHolder: "Which network's stage diagram?" });
  return picked || networks[0];
}

function runDraw(program, file, output, network) {
  const [, ...prefix] = cliCommand();
  const args = [...prefix, "draw", file, "--level", "stage", "-o", output];
  if (network) args.push("--network", network);
  return new Promise((resolve) => {
    // no shell: the file name goes to resdsl as one argument whatever it holds
    childProcess.execFile(program, args, { cwd: path.dirname(file), timeout: DRAW_TIMEOUT_MS, windowsHide: true },
      (error, stdout, stderr) => resolve({ error, stdout, stderr, command: [program, ...args].join(" ") }));
  });
}

async function renderDiagram(document, entry) {
  const file = document.uri.fsPath;
  const title = `Stages: ${path.basename(file)}`;
  entry.panel.title = title;
  entry.network = await chooseNetwork(document, entry);
  const output = path.join(entry.directory, "stages.svg");
  fs.rmSync(output, { force: true });
  const program = cliCommand()[0];
  const found = findProgram(program);
  if (!found) {
    entry.panel.webview.html = page(title, `<pre>${escapeHtml(notFoundMessage(program))}</pre>`);
    return;
  }
  const result = await runDraw(found, file, output, entry.network);
  if (entry.panel !== diagrams.get(file)?.panel) return; // closed while drawing
  if (result.error || !fs.existsSync(output)) {
    const reason = (result.stderr || result.stdout || "").trim() || (result.error ? result.error.message : "no SVG written");
    entry.panel.webview.html = page(title,
      `<p class="note">${escapeHtml(result.command)} failed:</p><pre>${escapeHtml(reason)}</pre>`);
    return;
  }
  const svg = fs.readFileSync(output).toString("base64");
  const unsaved = document.isDirty ? "<p class=\"note\">The diagram shows the saved file; save to update it.</p>" : "";
  const which = entry.network ? `<p class="note">network ${escapeHtml(entry.network)}</p>` : "";
  entry.panel.webview.html = page(title, `${unsaved}${which}<img alt="${escapeHtml(title)}" src="data:image/svg+xml;base64,${svg}">`);
}

async function showStageDiagram() {
  const editor = vscode.window.activeTextEditor;
  const document = editor && editor.document;
  if (!document || document.languageId !== LANGUAGE) {
    vscode.window.showErrorMessage("resdsl: open a .res file to show its stage diagram.");
    return;
  }
  if (document.isUntitled) {
    vscode.window.showErrorMessage("resdsl: save the file first: the diagram is drawn from the saved file.");
    return;
  }
  const file = document.uri.fsPath;
  let entry = diagrams.get(file);
  if (entry) {
    entry.panel.reveal(vscode.ViewColumn.Beside, true);
  } else {
    const panel = vscode.window.createWebviewPanel("resdsl.stageDiagram", `Stages: ${path.basename(file)}`,
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, { enableScripts: false });
    entry = { panel, directory: fs.mkdtempSync(path.join(os.tmpdir(), "resdsl-diagram-")), network: null };
    diagrams.set(file, entry);
    panel.onDidDispose(() => {
      fs.rmSync(entry.directory, { recursive: true, force: true });
      diagrams.delete(file);
    });
  }
  entry.panel.webview.html = page("resdsl", "<p class=\"note\">Drawing…</p>");
  await renderDiagram(document, entry);
}

// ---- activation ----

async function activate(context) {
  outputChannel = vscode.window.createOutputChannel("resdsl");
  context.subscriptions.push(outputChannel);
  context.subscriptions.push(
    vscode.commands.registerCommand("resdsl.showStageDiagram", showStageDiagram),
    vscode.commands.registerCommand("resdsl.restartServer", () => restartClient(context)),
    vscode.workspace.onDidSaveTextDocument((document) => {
      const entry = diagrams.get(document.uri.fsPath);
      return entry ? renderDiagram(document, entry) : undefined;
    }),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("resdsl.server.command") || event.affectsConfiguration("resdsl.inlayHints.enabled")) {
        return restartClient(context);
      }
      return undefined;
    }),
  );
  await startClient(context);
}

async function deactivate() {
  for (const entry of diagrams.values()) entry.panel.dispose();
  await stopClient();
}

module.exports = { activate, deactivate, cliCommand, findProgram, networksOf, serverCommand };
