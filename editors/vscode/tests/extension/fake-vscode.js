// A stand-in for the parts of the VS Code API and of vscode-languageclient that extension.js uses, so that
// its tests run under plain Node: it records what the extension registers, shows and starts.
"use strict";

const Module = require("module");

class Emitter {
  constructor() {
    this.listeners = [];
    this.event = (listener) => {
      this.listeners.push(listener);
      return { dispose: () => (this.listeners = this.listeners.filter((l) => l !== listener)) };
    };
  }

  async fire(value) {
    return Promise.all(this.listeners.map((listener) => listener(value)));
  }
}

function createFake() {
  const state = {
    settings: {},
    commands: new Map(),
    errors: [],
    panels: [],
    clients: [],
    quickPicks: [],
    pickAnswer: null,
    activeTextEditor: null,
    saved: new Emitter(),
    configuration: new Emitter(),
  };
  const vscode = {
    ViewColumn: { Beside: -2 },
    window: {
      get activeTextEditor() {
        return state.activeTextEditor;
      },
      createOutputChannel: (name) => ({ name, lines: [], appendLine(line) { this.lines.push(line); }, dispose() {} }),
      showErrorMessage: async (message, ...items) => {
        state.errors.push(message);
        return undefined;
      },
      showQuickPick: async (items, options) => {
        state.quickPicks.push({ items, options });
        return state.pickAnswer;
      },
      createWebviewPanel: (viewType, title, showOptions, options) => {
        const disposed = new Emitter();
        const panel = {
          viewType, title, showOptions, options, revealed: 0, webview: { html: "" },
          reveal() { this.revealed += 1; },
          onDidDispose: disposed.event,
          dispose() { disposed.fire(); },
        };
        state.panels.push(panel);
        return panel;
      },
    },
    commands: {
      registerCommand: (id, callback) => {
        state.commands.set(id, callback);
        return { dispose: () => state.commands.delete(id) };
      },
      executeCommand: async () => undefined,
    },
    workspace: {
      workspaceFolders: undefined,
      getConfiguration: (section) => ({
        get: (key, fallback) => {
          const full = `${section}.${key}`;
          return full in state.settings ? state.settings[full] : fallback;
        },
      }),
      createFileSystemWatcher: (glob) => ({ glob, dispose() {} }),
      onDidSaveTextDocument: state.saved.event,
      onDidChangeConfiguration: state.configuration.event,
    },
  };

  class LanguageClient {
    constructor(id, name, serverOptions, clientOptions) {
      Object.assign(this, { id, name, serverOptions, clientOptions, state: 1, started: 0, stopped: 0 });
      state.clients.push(this);
    }

    async start() {
      this.started += 1;
      this.state = 2;
    }

    async stop() {
      this.stopped += 1;
      this.state = 1;
    }
  }
  const languageclient = { LanguageClient, State: { Stopped: 1, Running: 2, Starting: 3 } };
  return { state, vscode, languageclient };
}

// Load a fresh extension.js against a fresh fake; returns {extension, state, context}.
function loadExtension(extensionPath) {
  const fake = createFake();
  const originalLoad = Module._load;
  Module._load = function load(request, parent, isMain) {
    if (request === "vscode") return fake.vscode;
    if (request === "vscode-languageclient/node") return fake.languageclient;
    return originalLoad.call(this, request, parent, isMain);
  };
  try {
    delete require.cache[require.resolve(extensionPath)];
    const extension = require(extensionPath);
    return { extension, state: fake.state, context: { subscriptions: [] } };
  } finally {
    Module._load = originalLoad;
  }
}

// A TextDocument of a file on disk.
function documentOf(fsPath, text, { languageId = "res", isDirty = false, isUntitled = false } = {}) {
  return { uri: { fsPath }, fileName: fsPath, languageId, isDirty, isUntitled, getText: () => text };
}

module.exports = { documentOf, loadExtension };
