import { afterAll, beforeAll, expect, test } from "vitest";
import { Writable } from "node:stream";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { sendFile } from "../../libs/cli/send.js";
import type { Mesh } from "../../libs/mesh/index.js";
import { penguinRows, startPenguinMesh } from "../helpers/mesh.js";

let mesh: Mesh;
beforeAll(async () => { mesh = await startPenguinMesh(); });
afterAll(async () => { await mesh?.stop(); });
test("probe", async () => {
  const rows = await penguinRows();
  console.log(rows.slice(0, 3), rows.length);
  const dir = mkdtempSync(path.join(tmpdir(), "probe-"));
  const f = path.join(dir, "a.jsonl");
  writeFileSync(f, rows.slice(0, 3).map((r) => JSON.stringify(r)).join("\n") + '\n{"Island": "Dream", "Beak Length (mm)": "abc"}\n{"Species":"x"}\n');
  let text = "";
  const out = new Writable({ write(c, _e, cb) { text += c; cb(); } });
  const rep = await sendFile(f, { ingest: mesh.address("ingest"), out });
  console.log(rep, text, mesh.services.map((s) => [s.name, s.address]));
  expect(1).toBe(1);
});
