// The VS Code end of codedouble: start `codedouble serve`, let vscode-languageclient turn its inline
// completions into ghost text (LSP 3.18, built into the client since 10.x), and show the double's state.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as vscode from "vscode";
import {
  CodeActionRequest,
  DidChangeConfigurationNotification,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
} from "vscode-languageclient/node";
import { Config, configurationChange, Places, RESTART_KEYS, serverCommand, toInitializationOptions } from "./settings";
import { NEXT_EDIT_KIND, nextEdits, pickNext, wholeDocument } from "./nextedit";
import { formatStatusBar, formatStatusDetail, Status } from "./status";

const ON_LANGUAGE = "onLanguage:";

/** The languages of package.json's `onLanguage:` activation events, in their order. */
export function languagesOf(manifest: { activationEvents?: unknown }): string[] {
  const events = Array.isArray(manifest.activationEvents) ? manifest.activationEvents : [];
  return events
    .filter((event): event is string => typeof event === "string" && event.startsWith(ON_LANGUAGE))
    .map((event) => event.slice(ON_LANGUAGE.length));
}

/** VS Code's ids of the languages the server completes (it tells them apart by file extension). One list, in
 * package.json, activates the extension and selects the documents; tests/test_editor_languages.py checks it
 * against the server's (grammars/languages.py). */
export const LANGUAGES: readonly string[] = languagesOf(
  JSON.parse(fs.readFileSync(path.join(__dirname, "..", "package.json"), "utf8")),
);
const STATUS_REQUEST = "codedouble/status";
const POLL_MS = 3000;

let client: LanguageClient | undefined;
let item: vscode.StatusBarItem | undefined;
let last: Status | undefined;
let timer: ReturnType<typeof setInterval> | undefined;

function settings(): Config {
  return vscode.workspace.getConfiguration("codedouble");
}

function places(): Places {
  return { workspaceFolder: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath, home: os.homedir() };
}

export function activate(context: vscode.ExtensionContext): void {
  item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  item.command = "codedouble.showStatus";
  show(undefined);
  item.show();
  context.subscriptions.push(
    item,
    vscode.commands.registerCommand("codedouble.showStatus", showStatus),
    vscode.commands.registerCommand("codedouble.applyNextEdit", applyNextEdit),
    vscode.workspace.onDidChangeConfiguration(onConfiguration),
    { dispose: () => clearInterval(timer) },
  );
  // The model loads in the background after `initialized`; polling is how "loading" turns into "ready".
  timer = setInterval(() => void refresh(), POLL_MS);
  void start(); // not awaited: activation need not wait for the server to import torch
}

export async function deactivate(): Promise<void> {
  clearInterval(timer);
  const stopping = client;
  client = undefined;
  await stopping?.stop();
}

async function start(): Promise<void> {
  const { command, args } = serverCommand(settings(), places());
  const cwd = places().workspaceFolder;
  const serverOptions: ServerOptions = { command, args, options: cwd ? { cwd } : {} };
  const clientOptions: LanguageClientOptions = {
    documentSelector: LANGUAGES.map((language) => ({ scheme: "file", language })),
    // A function, so that a restart sends the settings of that moment.
    initializationOptions: () => toInitializationOptions(settings(), places()),
    outputChannelName: "codedouble",
    // No `synchronize.configurationSection`: it would send every `codedouble.*` key, `command` and
    // `pythonPath` included, which the server does not know; onConfiguration sends the server's own options.
  };
  client = new LanguageClient("codedouble", "codedouble", serverOptions, clientOptions);
  try {
    await client.start();
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    show({
      state: "stopped",
      problem: `codedouble: cannot start \`${[command, ...args].join(" ")}\` (${why}). Install codedouble, or set codedouble.pythonPath to a Python that has it.`,
    });
    void vscode.window.showErrorMessage(last?.problem ?? why);
    return;
  }
  await refresh();
}

async function restart(): Promise<void> {
  const old = client;
  client = undefined;
  await old?.dispose().catch(() => undefined);
  await start();
}

async function onConfiguration(event: vscode.ConfigurationChangeEvent): Promise<void> {
  if (!event.affectsConfiguration("codedouble")) {
    return;
  }
  if (RESTART_KEYS.some((key) => event.affectsConfiguration(`codedouble.${key}`))) {
    await restart();
    return;
  }
  if (client?.state === State.Running) {
    await client.sendNotification(DidChangeConfigurationNotification.type, configurationChange(settings(), places()));
    await refresh();
  }
}

async function refresh(): Promise<void> {
  if (client === undefined) {
    return;
  }
  if (client.state === State.Stopped) {
    if (last?.state !== "stopped") {
      show({ state: "stopped", problem: "codedouble: the server stopped; see the codedouble output channel" });
    }
    return;
  }
  if (client.state !== State.Running) {
    return;
  }
  try {
    show(await client.sendRequest<Status>(STATUS_REQUEST, {}));
  } catch {
    // A status request lost to a restart: the next poll asks again.
  }
}

function show(status: Status | undefined): void {
  last = status;
  if (item === undefined) {
    return;
  }
  item.text = formatStatusBar(status);
  item.tooltip = formatStatusDetail(status);
  const colour = status?.state === "broken" || status?.state === "stopped" ? "statusBarItem.errorBackground"
    : status?.state === "missing" || status?.state === "stale" ? "statusBarItem.warningBackground" : undefined;
  item.backgroundColor = colour ? new vscode.ThemeColor(colour) : undefined;
}

async function showStatus(): Promise<void> {
  await refresh();
  const [first, ...rest] = formatStatusDetail(last).split("\n");
  const output = "Show Output";
  const choice = await vscode.window.showInformationMessage(first, { modal: true, detail: rest.join("\n") }, output);
  if (choice === output) {
    client?.outputChannel.show();
  }
}

/** codedouble: Apply Next Edit. The server's next edits are code actions, which vscode-languageclient already
 * shows in the lightbulb at the cursor (the server advertises codeActionProvider); this asks for those of the
 * whole document, applies the first at or after the cursor and moves the cursor there. */
async function applyNextEdit(): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (editor === undefined || client === undefined || client.state !== State.Running) {
    void vscode.window.showInformationMessage("codedouble: no server for this editor");
    return;
  }
  const uri = client.code2ProtocolConverter.asUri(editor.document.uri);
  const actions = await client.sendRequest(CodeActionRequest.type, {
    textDocument: { uri },
    range: wholeDocument(editor.document.lineCount),
    context: { diagnostics: [], only: [NEXT_EDIT_KIND] },
  });
  const cursor = editor.selection.active;
  const next = pickNext(nextEdits(actions ?? [], uri), { line: cursor.line, character: cursor.character });
  if (next === undefined) {
    void vscode.window.showInformationMessage("codedouble: no next edit in this file");
    return;
  }
  const edit = await client.protocol2CodeConverter.asWorkspaceEdit({ changes: { [uri]: [next.edit] } });
  if (edit !== undefined && (await vscode.workspace.applyEdit(edit))) {
    const at = client.protocol2CodeConverter.asPosition(next.edit.range.start);
    editor.selection = new vscode.Selection(at, at);
    editor.revealRange(new vscode.Range(at, at));
  }
}
