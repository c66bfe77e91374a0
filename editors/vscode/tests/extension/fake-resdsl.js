// A stand-in for the resdsl CLI in the extension's tests: `node fake-resdsl.js draw FILE --level stage -o OUT
// [--network NAME]` records its arguments in FAKE_RESDSL_LOG and writes an SVG to OUT, or fails as resdsl
// does (its error on stderr, exit 1) when the file contains the word FAIL.
"use strict";

const fs = require("fs");

const args = process.argv.slice(2);
const log = process.env.FAKE_RESDSL_LOG;
const calls = log && fs.existsSync(log) ? JSON.parse(fs.readFileSync(log, "utf8")) : [];
calls.push({ args, cwd: process.cwd() });
if (log) fs.writeFileSync(log, JSON.stringify(calls));

const file = args[1];
if (fs.readFileSync(file, "utf8").includes("FAIL")) {
  process.stderr.write(`error[E0201]: unknown name \`FAIL\` <here>\n  --> ${file}:3:5\n`);
  process.exit(1);
}
const output = args[args.indexOf("-o") + 1];
fs.writeFileSync(output, `<svg xmlns="http://www.w3.org/2000/svg"><text>call ${calls.length}</text></svg>`);
