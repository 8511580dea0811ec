// Import checks for the workspace packages (dependency-cruiser), run by `npm run check:deps` and by CI:
//  - no import cycles (type-only imports excepted: they vanish at run time);
//  - layering: a package's sources import only the packages below it (LAYERS);
//  - every @qkvflow/* and npm package a package's sources import is declared in that package's own
//    package.json (dependencies or peerDependencies); node: builtins are always allowed;
//  - packages reach each other by package name only, never by a relative path into another package;
//  - tests and build configs may also use the root devDependencies; nothing may be unresolvable.
// The per-package rules are generated from LAYERS and the packages' package.json files.
const { existsSync, readdirSync, readFileSync } = require("node:fs");
const { join } = require("node:path");

/** Which packages each package's sources may import: autograd ← ode ← models ← {train, analysis} ← cli. */
const LAYERS = {
  autograd: [],
  ode: ["autograd"],
  models: ["autograd", "ode"],
  train: ["autograd", "ode", "models"],
  analysis: ["autograd", "ode", "models"],
  cli: ["autograd", "ode", "models", "train", "analysis"],
};

const readJson = (p) => JSON.parse(readFileSync(p, "utf8"));
const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
const anyOf = (names) => `(${names.map(escapeRegExp).join("|")})`;

/** Workspace packages: folder name → package.json. */
const packages = {};
for (const dir of readdirSync(join(__dirname, "packages")).sort()) {
  const manifest = join(__dirname, "packages", dir, "package.json");
  if (existsSync(manifest)) packages[dir] = readJson(manifest);
}
const dirOfName = Object.fromEntries(Object.entries(packages).map(([dir, pkg]) => [pkg.name, dir]));

const perPackage = [];
for (const [dir, pkg] of Object.entries(packages)) {
  if (!(dir in LAYERS)) {
    throw new Error(`.dependency-cruiser.cjs: packages/${dir} has no entry in LAYERS; say which packages it may import`);
  }
  const others = Object.keys(packages).filter((d) => d !== dir);
  const below = LAYERS[dir].filter((d) => d in packages);
  const declared = Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies })
    .map((name) => dirOfName[name])
    .filter(Boolean);
  const notBelow = others.filter((d) => !below.includes(d));
  const undeclared = others.filter((d) => !declared.includes(d));
  if (notBelow.length > 0) {
    perPackage.push({
      name: `layering-${dir}`,
      severity: "error",
      comment: `${pkg.name} sits below ${notBelow.map((d) => packages[d].name).join(", ")} and must not import them (see LAYERS)`,
      from: { path: `^packages/${escapeRegExp(dir)}/src/` },
      to: { path: `^packages/${anyOf(notBelow)}/` },
    });
  }
  if (undeclared.length > 0) {
    perPackage.push({
      name: `undeclared-workspace-dependency-${dir}`,
      severity: "error",
      comment: `${pkg.name} imports a workspace package its package.json does not declare (dependencies or peerDependencies)`,
      from: { path: `^packages/${escapeRegExp(dir)}/src/` },
      to: { path: `^packages/${anyOf(undeclared)}/` },
    });
  }
}

const root = readJson(join(__dirname, "package.json"));
// `gl` is gpu.js's optional native module; the headless-GL tests probe for it directly.
const rootDevOnly = [...Object.keys({ ...root.dependencies, ...root.devDependencies }), "gl"];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "Import cycle: split the shared part into its own module (type-only imports do not count)",
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ["type-only"] } },
    },
    ...perPackage,
    {
      name: "no-relative-import-across-packages",
      severity: "error",
      comment: "Import another workspace package by its name (@qkvflow/...), not by a relative path into its files",
      from: { path: "^packages/([^/]+)/" },
      to: { path: "^packages/", pathNot: "^packages/$1/", dependencyTypesNot: ["aliased-tsconfig"] },
    },
    {
      name: "undeclared-npm-dependency",
      severity: "error",
      comment: "A package's sources may import only npm packages declared in its own dependencies or peerDependencies",
      from: { path: "^packages/[^/]+/src/" },
      // (dependency-cruiser also tags a peer dependency `npm-no-pkg`; `npm-peer` is what counts)
      to: {
        dependencyTypes: ["npm-no-pkg", "npm-unknown", "npm-dev", "npm-optional", "npm-bundled"],
        dependencyTypesNot: ["npm", "npm-peer"],
      },
    },
    {
      name: "undeclared-dev-dependency",
      severity: "error",
      comment: "Tests and build configs may use their package's dependencies and the root devDependencies, nothing else",
      from: { path: "^packages/[^/]+/", pathNot: "^packages/[^/]+/src/" },
      to: { dependencyTypes: ["npm-no-pkg", "npm-unknown"], pathNot: `(^|/)node_modules/${anyOf(rootDevOnly)}/` },
    },
    {
      name: "not-to-unresolvable",
      severity: "error",
      comment: "This import does not resolve (missing package, file or tsconfig path)",
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: "(^|/)node_modules/" },
    exclude: { path: "^packages/[^/]+/dist/" },
    // Resolve @qkvflow/* through the tsconfig paths to the sources, as tsc and tsx do.
    tsConfig: { fileName: "tsconfig.json" },
    // Keep `import type` edges: a type import of an undeclared package breaks the published .d.ts as well.
    tsPreCompilationDeps: true,
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".d.ts", ".js", ".mjs", ".cjs", ".json"],
    },
  },
};
