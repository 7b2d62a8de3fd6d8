import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The package root (the folder with proto/ and package.json), from source or from dist/. */
export const packageRoot: string = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!(existsSync(path.join(dir, "package.json")) && existsSync(path.join(dir, "proto")))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error("cannot find the sluice package root");
    dir = up;
  }
  return dir;
})();

/** A data file that the vega-datasets package ships (its exports hide the data folder). */
export function vegaDataset(name: string): string {
  const main = createRequire(import.meta.url).resolve("vega-datasets");
  return path.join(path.dirname(main), "..", "data", name);
}

/** Working folder for artifacts that Sluice builds (models, fitted pipelines), default `.sluice`. */
export function workDir(): string {
  return path.resolve(process.env.SLUICE_HOME ?? ".sluice");
}

/** The penguins pipeline spec that ships with Sluice. */
export const penguinsSpec: string = path.join(packageRoot, "deploy", "pipelines", "penguins.yaml");
