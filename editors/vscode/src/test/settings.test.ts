import assert from "node:assert/strict";
import { test } from "node:test";
import { configFrom, configurationChange, expand, serverCommand, toInitializationOptions } from "../settings";

// What VS Code hands over when nothing is set: each setting's default from package.json.
const DEFAULTS = {
  command: ["codedouble", "serve"],
  pythonPath: "",
  artifact: "",
  languages: [],
  exclude: [],
  maxLines: 8,
  debounceMs: 0,
};

test("defaults: `codedouble serve`, and only the numbers go to the server", () => {
  const config = configFrom(DEFAULTS);
  assert.deepEqual(serverCommand(config), { command: "codedouble", args: ["serve"] });
  assert.deepEqual(toInitializationOptions(config), { maxLines: 8, debounceMs: 0 });
});

test("every setting maps to the server's camelCase option", () => {
  const config = configFrom({
    ...DEFAULTS,
    artifact: " /doubles/mine ",
    languages: ["python", "tsx"],
    exclude: ["vendor/**", "", "**/*.gen.go"],
    maxLines: 3,
    debounceMs: 150,
  });
  assert.deepEqual(toInitializationOptions(config), {
    artifact: "/doubles/mine",
    languages: ["python", "tsx"],
    exclude: ["vendor/**", "**/*.gen.go"],
    maxLines: 3,
    debounceMs: 150,
  });
});

test("unset, empty and mistyped values are left out, so the server's defaults apply", () => {
  assert.deepEqual(toInitializationOptions(configFrom({})), {});
  const config = configFrom({ artifact: "   ", languages: "python", exclude: [1, null], maxLines: "8", debounceMs: null });
  assert.deepEqual(toInitializationOptions(config), {});
});

test("numbers out of range still go: the server names the bad setting and keeps its default", () => {
  assert.deepEqual(toInitializationOptions(configFrom({ maxLines: 0, debounceMs: 5000 })), { maxLines: 0, debounceMs: 5000 });
  // minConfidence: a number goes as it is (the server checks 0..1); null, the default, leaves the double's own.
  assert.deepEqual(toInitializationOptions(configFrom({ minConfidence: 0.3 })), { minConfidence: 0.3 });
  assert.deepEqual(toInitializationOptions(configFrom({ minConfidence: null })), {});
  // feedbackLog: on by default on both sides, so only the opt-out travels.
  assert.deepEqual(toInitializationOptions(configFrom({ feedbackLog: false })), { feedbackLog: false });
  assert.deepEqual(toInitializationOptions(configFrom({ feedbackLog: true })), {});
  // workspaceContext: a boolean goes as it is; anything else leaves the server's default (on).
  assert.deepEqual(toInitializationOptions(configFrom({ workspaceContext: false })), { workspaceContext: false });
  assert.deepEqual(toInitializationOptions(configFrom({ workspaceContext: "no" })), {});
  // snippets: on by default in the server; only the opt-out is sent.
  assert.deepEqual(toInitializationOptions(configFrom({ snippets: false })), { snippets: false });
  assert.deepEqual(toInitializationOptions(configFrom({ snippets: true })), {});
  // refuseStale: off by default on both sides, so only the opt-in travels.
  assert.deepEqual(toInitializationOptions(configFrom({ refuseStale: true })), { refuseStale: true });
  assert.deepEqual(toInitializationOptions(configFrom({ refuseStale: false })), {});
});

test("the remote engine's settings travel when set; local, the default, does not", () => {
  const remote = configFrom({ backend: "openai", url: " http://gpu-box:8000 ", model: "alice", apiKeyEnv: "TEAM_KEY", timeoutMs: 800 });
  assert.deepEqual(toInitializationOptions(remote), {
    backend: "openai",
    url: "http://gpu-box:8000",
    model: "alice",
    apiKeyEnv: "TEAM_KEY",
    timeoutMs: 800,
  });
  assert.deepEqual(toInitializationOptions(configFrom({ backend: "local", url: "", model: "  ", timeoutMs: "fast" })), {});
  // A wrong name still goes: the server says which setting is wrong and serves locally.
  assert.deepEqual(toInitializationOptions(configFrom({ backend: "tgi" })), { backend: "tgi" });
});

test("pythonPath runs the server as a module of that Python, whatever command says", () => {
  const config = configFrom({ ...DEFAULTS, pythonPath: "/venv/bin/python", command: ["other", "thing"] });
  assert.deepEqual(serverCommand(config), { command: "/venv/bin/python", args: ["-m", "codedouble.trainer.cli", "serve"] });
});

test("a custom command is used as it is; an empty one falls back to `codedouble serve`", () => {
  const custom = configFrom({ command: ["/opt/codedouble/bin/codedouble", "serve", "--artifact", "/d"] });
  assert.deepEqual(serverCommand(custom), { command: "/opt/codedouble/bin/codedouble", args: ["serve", "--artifact", "/d"] });
  assert.deepEqual(serverCommand(configFrom({ command: [] })), { command: "codedouble", args: ["serve"] });
  assert.deepEqual(serverCommand(configFrom({})), { command: "codedouble", args: ["serve"] });
});

test("${workspaceFolder}, ${userHome} and ~ in paths", () => {
  const places = { workspaceFolder: "/src/app", home: "/home/me" };
  assert.equal(expand("${workspaceFolder}/.venv/bin/python", places), "/src/app/.venv/bin/python");
  assert.equal(expand("~/doubles/x", places), "/home/me/doubles/x");
  assert.equal(expand("${userHome}/d", places), "/home/me/d");
  assert.equal(expand("a~b", places), "a~b");
  assert.equal(expand("${workspaceFolder}/x", {}), "${workspaceFolder}/x");
  const config = configFrom({ pythonPath: "${workspaceFolder}/.venv/bin/python", artifact: "~/d" });
  assert.equal(serverCommand(config, places).command, "/src/app/.venv/bin/python");
  assert.equal(toInitializationOptions(config, places).artifact, "/home/me/d");
});

test("a settings change goes to the server under the `codedouble` key", () => {
  assert.deepEqual(configurationChange(configFrom({ ...DEFAULTS, languages: ["go"] })), {
    settings: { codedouble: { languages: ["go"], maxLines: 8, debounceMs: 0 } },
  });
});
