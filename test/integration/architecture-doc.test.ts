// docs/architecture.md is the newcomer's map of the tree: every source file is named in it, so a
// file added without a word about what it owns fails here rather than going unnoticed. In the
// integration project because it reads the tree, which only Node can.

import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");
const FOLDERS = ["workers", "common", "client", "node-target", "scripts", "bench"];
const SOURCE = /\.(ts|wat|sh)$/;

function sourcesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === "node_modules" ? [] : sourcesUnder(path);
    return SOURCE.test(e.name) ? [path] : [];
  });
}

describe("docs/architecture.md", () => {
  it("names every source file of the tree", () => {
    const doc = readFileSync(join(ROOT, "docs/architecture.md"), "utf8");
    // Named in code spans: by its name alone in its folder's row, or by a path ending in it.
    const spans = [...doc.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
    const named = (path: string) => {
      const name = path.split("/").at(-1)!;
      return spans.some((s) => s === name || s === path || s.endsWith(`/${name}`) || s.split(/[\s,]+/).includes(name));
    };
    const files = FOLDERS.flatMap(sourcesUnder).map((p) => relative(ROOT, join(ROOT, p)));
    expect(files.length).toBeGreaterThan(100);
    expect(files.filter((f) => !named(f))).toEqual([]);
  });
});
