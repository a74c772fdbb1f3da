// Builds the console into the Python package (src/modelhost/console/static/), where modelhost
// serves it at /console. Run `npm run build` here, or scripts/build-console from the repo root.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";

const here = fileURLToPath(new URL(".", import.meta.url));
const outDir = join(here, "..", "src", "modelhost", "console", "static");

// The files whose content makes the build; tests/console recomputes this hash to catch a
// source change that was committed without rebuilding.
const SOURCES = [
  ".prettierrc.json",
  "index.html",
  "package.json",
  "package-lock.json",
  "tsconfig.json",
  "vite.config.ts",
  "src",
];

function listFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path).flatMap((name) => listFiles(join(path, name)));
}

export function sourceHash(): string {
  const hash = createHash("sha256");
  const files = SOURCES.flatMap((name) => listFiles(join(here, name)))
    .map((file) => relative(here, file).split(sep).join("/"))
    .sort();
  for (const file of files) {
    hash.update(file + "\n");
    hash.update(readFileSync(join(here, file)));
    hash.update("\n");
  }
  return hash.digest("hex");
}

function stampSources(): Plugin {
  return {
    name: "modelhost-source-stamp",
    apply: "build",
    closeBundle() {
      writeFileSync(join(outDir, "source-sha256.txt"), sourceHash() + "\n");
    },
  };
}

export default defineConfig({
  base: "/console/",
  plugins: [stampSources()],
  build: {
    outDir,
    emptyOutDir: true,
    target: "es2022",
    // No inline polyfill script: the page's CSP allows scripts from the server only.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev` against a local modelhost: the API calls go to it.
    proxy: {
      "/api": "http://127.0.0.1:8080",
      "/v2": "http://127.0.0.1:8080",
      "/v1": "http://127.0.0.1:8080",
    },
  },
});
