// extension.ts's wiring, with stand-ins for `vscode` and vscode-languageclient (neither loads outside VS Code):
// what it starts, what it sends on a settings change, what the status bar says, and that package.json agrees.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

const RUNNING = 2;
const clients: FakeClient[] = [];
const commands = new Map<string, () => unknown>();
const listeners: ((event: { affectsConfiguration(section: string): boolean }) => unknown)[] = [];
const item = { text: "", tooltip: "", command: "", backgroundColor: undefined as unknown, show() {}, dispose() {} };
let values: Record<string, unknown> = { command: ["codedouble", "serve"], pythonPath: "${workspaceFolder}/.venv/bin/python", maxLines: 8 };

class FakeClient {
  state = RUNNING;
  notifications: [string, unknown][] = [];
  stopped = false;
  constructor(public id: string, public name: string, public serverOptions: any, public clientOptions: any) {
    clients.push(this);
  }
  async start() {}
  async stop() {
    this.stopped = true;
  }
  async dispose() {
    this.stopped = true;
  }
  async sendNotification(type: { method: string }, params: unknown) {
    this.notifications.push([type.method, params]);
  }
  async sendRequest(method: string) {
    assert.equal(method, "codedouble/status");
    return { state: "ready", latency_ms: { count: 1, p50: 5, p95: 9 } };
  }
}

const fakeVscode = {
  StatusBarAlignment: { Left: 1, Right: 2 },
  ThemeColor: class { constructor(public id: string) {} },
  window: { createStatusBarItem: () => item, showErrorMessage: async () => undefined, showInformationMessage: async () => undefined },
  commands: { registerCommand: (id: string, run: () => unknown) => (commands.set(id, run), { dispose() {} }) },
  workspace: {
    workspaceFolders: [{ uri: { fsPath: "/ws" } }],
    getConfiguration: (section: string) => (assert.equal(section, "codedouble"), { get: (key: string) => values[key] }),
    onDidChangeConfiguration: (listener: (typeof listeners)[number]) => (listeners.push(listener), { dispose() {} }),
  },
};
const fakeClientModule = {
  LanguageClient: FakeClient,
  State: { Stopped: 1, Running: RUNNING, Starting: 3 },
  DidChangeConfigurationNotification: { type: { method: "workspace/didChangeConfiguration" } },
};

const Module = require("node:module");
const load = Module._load;
Module._load = function (request: string, ...rest: unknown[]) {
  if (request === "vscode") return fakeVscode;
  if (request === "vscode-languageclient/node") return fakeClientModule;
  return load.call(this, request, ...rest);
};
const extension: typeof import("../extension") = require("../extension");

const tick = () => new Promise((resolve) => setImmediate(resolve));
const change = (...keys: string[]) => ({ affectsConfiguration: (s: string) => s === "codedouble" || keys.includes(s) });

test("activate starts the server, feeds it the settings, and shows its status", async () => {
  const context = { subscriptions: [] as { dispose(): unknown }[] };
  extension.activate(context as any);
  try {
    await tick();
    const [client] = clients;
    assert.deepEqual(client.serverOptions, {
      command: "/ws/.venv/bin/python",
      args: ["-m", "codedouble.trainer.cli", "serve"],
      options: { cwd: "/ws" },
    });
    assert.deepEqual(client.clientOptions.documentSelector, extension.LANGUAGES.map((language) => ({ scheme: "file", language })));
    assert.deepEqual(client.clientOptions.initializationOptions(), { maxLines: 8 });
    assert.equal(item.text, "$(sparkle) codedouble: ready · p50 5.0 ms");
    assert.equal(item.command, "codedouble.showStatus");
    assert.ok(commands.has("codedouble.showStatus"));
    assert.ok(commands.has("codedouble.applyNextEdit"));

    // A server option: sent to the running server, no restart.
    values = { ...values, maxLines: 3, exclude: ["gen/**"] };
    await listeners[0](change("codedouble.maxLines", "codedouble.exclude"));
    assert.deepEqual(client.notifications, [
      ["workspace/didChangeConfiguration", { settings: { codedouble: { exclude: ["gen/**"], maxLines: 3 } } }],
    ]);
    assert.equal(clients.length, 1);

    // How the server starts: a new server.
    values = { ...values, pythonPath: "" };
    await listeners[0](change("codedouble.pythonPath"));
    assert.equal(clients.length, 2);
    assert.ok(client.stopped);
    assert.deepEqual(clients[1].serverOptions.command, "codedouble");
    assert.deepEqual(clients[1].serverOptions.args, ["serve"]);
  } finally {
    await extension.deactivate();
    for (const disposable of context.subscriptions) disposable.dispose();
  }
  assert.ok(clients[1].stopped);
});

test("package.json contributes what the extension registers", () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8"));
  assert.deepEqual(manifest.contributes.commands.map((c: { command: string }) => c.command), [...commands.keys()]);
  // The document selector's languages are package.json's activation events (tests/test_editor_languages.py
  // checks that list against the server's).
  assert.deepEqual(manifest.activationEvents, extension.LANGUAGES.map((language) => `onLanguage:${language}`));
  assert.ok(extension.LANGUAGES.includes("javascriptreact"));
  const settings = Object.keys(manifest.contributes.configuration.properties);
  assert.deepEqual(
    settings.sort(),
    ["apiKeyEnv", "artifact", "backend", "command", "debounceMs", "exclude", "feedbackLog", "languages", "maxLines", "minConfidence", "model", "nextEditMinPrecision", "nextEdits", "pythonPath", "refuseStale", "snippets", "timeoutMs", "url", "workspaceContext"].map((k) => `codedouble.${k}`),
  );
  // The accept command of every inline item (`codedouble.accepted`) is the server's: vscode-languageclient
  // registers it from executeCommandProvider. Registering it here too would throw "command already exists".
  assert.ok(!commands.has("codedouble.accepted"));
  assert.deepEqual(manifest.contributes.keybindings.map((k: { command: string }) => k.command), ["codedouble.applyNextEdit"]);
});

test("languagesOf reads only the onLanguage activation events", () => {
  const events = ["onLanguage:go", "onCommand:codedouble.showStatus", 3, "onLanguage:javascriptreact"];
  assert.deepEqual(extension.languagesOf({ activationEvents: events }), ["go", "javascriptreact"]);
  assert.deepEqual(extension.languagesOf({}), []);
});
