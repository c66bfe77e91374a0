// Tokenise .res text with the extension's TextMate grammar, as VS Code does (vscode-textmate on the
// Oniguruma WebAssembly build). Used by check-specs.js; run directly to print a file's tokens:
//   node tests/grammar/tokenize.js ../../specs/resnet.res
"use strict";

const fs = require("fs");
const path = require("path");
const textmate = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const GRAMMAR_PATH = path.join(__dirname, "..", "..", "syntaxes", "res.tmLanguage.json");

async function loadGrammar() {
  const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async (scopeName) => {
      if (scopeName !== "source.res") return null;
      return textmate.parseRawGrammar(fs.readFileSync(GRAMMAR_PATH, "utf8"), GRAMMAR_PATH);
    },
  });
  return registry.loadGrammar("source.res");
}

// Every token of `text`: {line (1-based), column (0-based), text, scopes}.
function tokenize(grammar, text) {
  const tokens = [];
  let state = textmate.INITIAL;
  text.split(/\r?\n/).forEach((line, index) => {
    const result = grammar.tokenizeLine(line, state);
    for (const token of result.tokens) {
      const piece = line.slice(token.startIndex, token.endIndex);
      if (piece.length) tokens.push({ line: index + 1, column: token.startIndex, text: piece, scopes: token.scopes });
    }
    state = result.ruleStack;
  });
  return tokens;
}

module.exports = { GRAMMAR_PATH, loadGrammar, tokenize };

if (require.main === module) {
  loadGrammar().then((grammar) => {
    for (const file of process.argv.slice(2)) {
      for (const t of tokenize(grammar, fs.readFileSync(file, "utf8"))) {
        if (t.text.trim()) console.log(`${t.line}:${t.column}\t${JSON.stringify(t.text)}\t${t.scopes.slice(1).join(" ")}`);
      }
    }
  });
}
