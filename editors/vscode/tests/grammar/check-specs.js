// Tokenise every bundled spec (specs/*.res of the repository, or the files given as arguments) with the
// grammar and fail if a token is `invalid`, or if a word of the language's vocabulary (vocabulary.json:
// the keywords of grammars/resdsl.lark, resdsl's op kinds, builtin functions, shortcut policies,
// resampling modes, merge words and op flags; tests/test_editor_vscode.py keeps it equal to resdsl's
// registries) is left without the scope of its kind in code, that is outside comments, strings, labels
// and parameter names.
"use strict";

const fs = require("fs");
const path = require("path");
const { loadGrammar, tokenize } = require("./tokenize");

const SPECS = path.resolve(__dirname, "..", "..", "..", "..", "specs");
const vocabulary = JSON.parse(fs.readFileSync(path.join(__dirname, "vocabulary.json"), "utf8"));

// The scope a word of each kind must carry (one of the scopes of its token must start with it).
const EXPECTED = [
  [vocabulary.keywords, ["keyword.", "storage.type.", "constant.language."]],
  [vocabulary.ops, ["support.function.op."]],
  [vocabulary.builtins, ["support.function.builtin.", "support."]],
  [vocabulary.policies, ["support.constant.policy."]],
  [vocabulary.modes, ["support.constant.mode."]],
  [vocabulary.merges, ["support.constant.merge.", "support.function."]],
  [vocabulary.flags, ["support.constant.flag."]],
];
// Where a word is a name the spec chose, or text: no vocabulary scope is expected. (A call of a block is
// not among them: an op's name where a block's call is expected would mean the grammar lost the op.)
const FREE = ["comment.", "string.", "entity.name.tag.", "variable.other.label.", "variable.parameter."];

function expectedScopes(word) {
  const found = EXPECTED.filter(([words]) => words.includes(word)).map(([, scopes]) => scopes);
  return found.length ? found.flat() : null;
}

function problemsOf(file, tokens) {
  const problems = [];
  for (const token of tokens) {
    const where = `${file}:${token.line}:${token.column + 1}`;
    if (token.scopes.some((s) => s.startsWith("invalid"))) {
      problems.push(`${where}: ${JSON.stringify(token.text)} is ${token.scopes.slice(1).join(" ")}`);
      continue;
    }
    if (token.scopes.some((s) => FREE.some((free) => s.startsWith(free)))) continue;
    for (const match of token.text.matchAll(/[A-Za-z_][A-Za-z0-9_]*/g)) {
      const expected = expectedScopes(match[0]);
      if (expected && !token.scopes.some((s) => expected.some((e) => s.startsWith(e)))) {
        problems.push(`${where}: \`${match[0]}\` is ${token.scopes.slice(1).join(" ") || "unscoped"}, ` +
          `expected ${expected.join(" or ")}`);
      }
    }
  }
  return problems;
}

async function main() {
  const files = process.argv.length > 2 ? process.argv.slice(2)
    : fs.readdirSync(SPECS).filter((f) => f.endsWith(".res")).sort().map((f) => path.join(SPECS, f));
  if (!files.length) throw new Error(`no .res files in ${SPECS}`);
  const grammar = await loadGrammar();
  const problems = [];
  const scopes = new Map();
  let tokenCount = 0;
  for (const file of files) {
    const tokens = tokenize(grammar, fs.readFileSync(file, "utf8"));
    tokenCount += tokens.length;
    for (const t of tokens) {
      const scope = t.scopes[t.scopes.length - 1];
      scopes.set(scope, (scopes.get(scope) || 0) + 1);
    }
    problems.push(...problemsOf(path.relative(process.cwd(), file), tokens));
  }
  if (problems.length) {
    console.error(problems.slice(0, 50).join("\n"));
    console.error(`${problems.length} problem(s) in ${files.length} file(s)`);
    process.exit(1);
  }
  console.log(`ok: ${files.length} spec(s), ${tokenCount} tokens, ${scopes.size} distinct scopes, no invalid token, ` +
    "every keyword, op, builtin, policy, mode, merge word and flag scoped");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
