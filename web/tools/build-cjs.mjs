#!/usr/bin/env node
// Generates the CommonJS build of the client from the ES module, and the CommonJS copy of its
// declarations:
//   jobwire.js   → jobwire.cjs    (export keywords dropped, module.exports added)
//   jobwire.d.ts → jobwire.d.cts  (same text: TypeScript reads .d.cts as CommonJS)
// jobwire.js may only use `export const|function|class NAME` and one `export default NAME;`
// and no import: anything else stops the build, so the two files cannot silently differ.
//   node web/tools/build-cjs.mjs          write both files
//   node web/tools/build-cjs.mjs --check  exit 1 when a committed file is not up to date
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const WEB = join(dirname(fileURLToPath(import.meta.url)), "..");
const HEADER = "// GENERATED from jobwire.js by tools/build-cjs.mjs: do not edit, edit jobwire.js.\n";

export function toCommonJs(source) {
  const names = [];
  let defaultName = null;
  const lines = source.split("\n").map((line, i) => {
    const named = /^export (const|function|class|async function) ([A-Za-z_$][\w$]*)/.exec(line);
    if (named) {
      names.push(named[2]);
      return line.slice("export ".length);
    }
    const dflt = /^export default ([A-Za-z_$][\w$]*);$/.exec(line);
    if (dflt) {
      defaultName = dflt[1];
      return null;
    }
    if (/^\s*(export|import)\b/.test(line) || /\bimport\.meta\b|\bimport\(/.test(line)) {
      throw new Error(`jobwire.js:${i + 1}: cannot convert to CommonJS: ${line.trim()}`);
    }
    return line;
  }).filter((line) => line !== null);
  if (!defaultName || !names.includes(defaultName)) throw new Error("jobwire.js needs `export default <exported name>;`");
  while (lines.length && lines[lines.length - 1] === "") lines.pop();
  return HEADER + '"use strict";\n' + lines.join("\n") + "\n\n" +
    'Object.defineProperty(exports, "__esModule", { value: true });\n' +
    names.map((n) => `exports.${n} = ${n};\n`).join("") +
    `exports.default = ${defaultName};\n`;
}

export function outputs() {
  const js = readFileSync(join(WEB, "jobwire.js"), "utf8");
  const dts = readFileSync(join(WEB, "jobwire.d.ts"), "utf8");
  return {
    "jobwire.cjs": toCommonJs(js),
    "jobwire.d.cts": HEADER.replace("jobwire.js", "jobwire.d.ts").replace(/edit jobwire\.js/, "edit jobwire.d.ts") + dts,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes("--check");
  let stale = 0;
  for (const [name, text] of Object.entries(outputs())) {
    const path = join(WEB, name);
    let current = null;
    try {
      current = readFileSync(path, "utf8");
    } catch {
      /* missing */
    }
    if (current === text) continue;
    if (check) {
      console.error(`web/${name} is out of date: run node web/tools/build-cjs.mjs`);
      stale++;
    } else {
      writeFileSync(path, text);
      console.log(`wrote web/${name}`);
    }
  }
  process.exit(stale ? 1 : 0);
}
