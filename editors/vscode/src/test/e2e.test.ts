// The real `codedouble serve`, started and configured by the extension's own code (serverCommand,
// toInitializationOptions), driven over stdio with vscode-jsonrpc: vscode-languageclient is built on it but
// imports `vscode`, which only exists inside VS Code. tests/test_vscode.py trains the double and sets the
// environment; without it this test is skipped.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from "vscode-jsonrpc/node";
import {
  CodeActionRequest,
  CompletionItemKind,
  CompletionRequest,
  DidChangeConfigurationNotification,
  DidChangeTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExecuteCommandRequest,
  ExitNotification,
  InitializedNotification,
  InitializeRequest,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  InsertTextFormat,
  LogMessageNotification,
  ShowMessageNotification,
  ShutdownRequest,
} from "vscode-languageserver-protocol";
import { NEXT_EDIT_KIND, NextEdit, nextEdits, pickNext, Position, wholeDocument } from "../nextedit";
import { configFrom, configurationChange, serverCommand, toInitializationOptions } from "../settings";
import { formatStatusBar, formatStatusDetail, Status } from "../status";

const ARTIFACT = process.env.CODEDOUBLE_TEST_ARTIFACT;
const REPO = process.env.CODEDOUBLE_TEST_REPO;
const PYTHON = process.env.CODEDOUBLE_TEST_PYTHON;
// tests/next_edit_history.py: app/jobs.py after the three commits that rewrote `logging.warn(`, and with the rule
// applied to its two other call sites; the artifact carries the rule in its edits.jsonl.
const JOBS = process.env.CODEDOUBLE_TEST_JOBS ? (JSON.parse(process.env.CODEDOUBLE_TEST_JOBS) as { before: string; after: string }) : undefined;
const SKIP = ARTIFACT && REPO && PYTHON && JOBS ? false : "set CODEDOUBLE_TEST_ARTIFACT, CODEDOUBLE_TEST_REPO, CODEDOUBLE_TEST_PYTHON and CODEDOUBLE_TEST_JOBS";

/** A position as a string index (LF lines; the test's texts are ASCII, so UTF-16 units are characters). */
function offsetOf(text: string, at: Position): number {
  const lines = text.split("\n");
  return lines.slice(0, at.line).reduce((sum, line) => sum + line.length + 1, 0) + at.character;
}
const READY_MS = 90_000; // a fresh server imports torch before it loads the double

// The history of tests/test_server.py: every installer registers its handler with this line.
const TYPED = "    registry.register(handler, pri";
const REST = "ority=HIGH_PRIORITY)";

test("e2e: the real server, configured as the extension does, completes the engineer's line", { skip: SKIP, timeout: 180_000 }, async () => {
  const values = {
    command: ["codedouble", "serve"],
    pythonPath: PYTHON,
    artifact: ARTIFACT,
    languages: [],
    exclude: ["**/generated/**"],
    maxLines: 8,
    debounceMs: 0,
  };
  const config = configFrom(values);
  const { command, args } = serverCommand(config);
  const child = spawn(command, args, { cwd: REPO, stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  const connection = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
  const messages: string[] = [];
  connection.onNotification(ShowMessageNotification.type, (p) => void messages.push(p.message));
  connection.onNotification(LogMessageNotification.type, (p) => void messages.push(p.message));
  connection.listen();
  const status = () => connection.sendRequest<Status>("codedouble/status", {});
  try {
    const root = pathToFileURL(REPO!).href;
    const init = await connection.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri: root,
      workspaceFolders: [{ uri: root, name: path.basename(REPO!) }],
      capabilities: {
        textDocument: {
          synchronization: { dynamicRegistration: false },
          completion: { completionItem: { snippetSupport: false } },
          inlineCompletion: { dynamicRegistration: false },
        },
      },
      initializationOptions: toInitializationOptions(config),
    });
    assert.ok(init.capabilities.inlineCompletionProvider, "the server offers inline completions");
    await connection.sendNotification(InitializedNotification.type, {});

    let got = await status();
    for (const deadline = Date.now() + READY_MS; !["ready", "missing", "broken"].includes(got.state) && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      got = await status();
    }
    assert.equal(got.state, "ready", `${JSON.stringify(got)}\n${stderr}`);
    assert.equal(path.resolve(got.artifact!), path.resolve(ARTIFACT!));
    assert.ok((got.options!.exclude as string[]).includes("**/generated/**"), "the user's globs reached the server");
    assert.deepEqual(messages, [], "the extension's options are all valid: the server complains of none");

    // plugins.py with a new installer under way, the cursor after `pri`.
    const plugins = fs.readFileSync(path.join(REPO!, "app", "plugins.py"), "utf8");
    const before = `${plugins}\n\ndef install_webhooks(handler, url):\n    handler.url = url\n${TYPED}`;
    const uri = pathToFileURL(path.join(REPO!, "app", "webhooks.py")).href;
    await connection.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri, languageId: "python", version: 1, text: `${before}\n    return handler\n` },
    });
    const lines = before.split("\n");
    const position = { line: lines.length - 1, character: lines[lines.length - 1].length }; // ASCII: UTF-16 = chars
    const answer = await connection.sendRequest(InlineCompletionRequest.type, {
      textDocument: { uri },
      position,
      context: { triggerKind: InlineCompletionTriggerKind.Automatic },
    });
    const items = Array.isArray(answer) ? answer : answer?.items ?? [];
    assert.equal(items.length, 1, JSON.stringify(answer));
    const insert = items[0].insertText;
    assert.equal(typeof insert === "string" ? insert : insert.value, REST);
    assert.deepEqual(items[0].range, { start: position, end: position });
    // Accepting it in VS Code runs the item's command; vscode-languageclient registered it from the server's
    // executeCommandProvider, so it reaches the server as workspace/executeCommand.
    assert.ok(init.capabilities.executeCommandProvider?.commands.includes("codedouble.accepted"));
    assert.equal(items[0].command?.command, "codedouble.accepted");
    await connection.sendRequest(ExecuteCommandRequest.type, { command: items[0].command!.command, arguments: items[0].command!.arguments });
    const accepted = (await status()).feedback!;
    assert.equal(accepted.accepted, 1);
    assert.equal(accepted.accepted_chars, REST.length);
    assert.equal(accepted.precision, 1);

    // What the status bar would show now: ready, with the latency of that completion.
    const after = await status();
    assert.equal(after.latency_ms!.count, 1);
    assert.match(formatStatusBar(after), /^\$\(sparkle\) codedouble: ready · p50 [\d.]+ ms$/);
    const detail = formatStatusDetail(after);
    assert.match(detail, /^codedouble: ready\n/);
    assert.ok(detail.includes(`Trained on: ${after.provenance!.repository}`), detail);
    // A changed setting reaches the running server as the extension sends it.
    await connection.sendNotification(DidChangeConfigurationNotification.type, configurationChange(configFrom({ ...values, maxLines: 3 })));
    const changed = await status();
    assert.equal(changed.options!.maxLines, 3);
    assert.equal(changed.state, "ready");
    assert.deepEqual(messages, []);
    console.log(`e2e completed ${JSON.stringify(REST)}; status bar: ${formatStatusBar(after)}`);

    // Next edits, as codedouble: Apply Next Edit does it: the code actions of the whole document, the first at
    // or after the cursor applied (here: to the text, told to the server as VS Code tells it), until none is left.
    let version = 1;
    const change = async (uri: string, text: string, start: number, end: number, newText: string): Promise<string> => {
      const lines = (upto: number) => text.slice(0, upto).split("\n");
      const at = (upto: number) => ({ line: lines(upto).length - 1, character: lines(upto).at(-1)!.length });
      await connection.sendNotification(DidChangeTextDocumentNotification.type, {
        textDocument: { uri, version: ++version },
        contentChanges: [{ range: { start: at(start), end: at(end) }, text: newText }],
      });
      return text.slice(0, start) + newText + text.slice(end);
    };
    const applyAll = async (uri: string, text: string, cursor: Position): Promise<[string, string[]]> => {
      const titles: string[] = [];
      for (let next: NextEdit | undefined; ; ) {
        const actions = await connection.sendRequest(CodeActionRequest.type, {
          textDocument: { uri },
          range: wholeDocument(text.split("\n").length),
          context: { diagnostics: [], only: [NEXT_EDIT_KIND] },
        });
        next = pickNext(nextEdits(actions ?? [], uri), cursor);
        if (next === undefined || titles.length > 10) {
          return [text, titles];
        }
        titles.push(next.action.title);
        text = await change(uri, text, offsetOf(text, next.edit.range.start), offsetOf(text, next.edit.range.end), next.edit.newText);
        cursor = next.edit.range.start;
      }
    };
    assert.deepEqual(init.capabilities.codeActionProvider, { codeActionKinds: [NEXT_EDIT_KIND] });
    const callSites = pathToFileURL(path.join(REPO!, "app", "call_sites.py")).href;
    await connection.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri: callSites, languageId: "python", version: 1, text: plugins },
    });
    const second = plugins.indexOf("register(", plugins.indexOf("registry.register(") + 1);
    const edited = await change(callSites, plugins, second, second + "register".length, "add");
    const [done, titles] = await applyAll(callSites, edited, { line: edited.slice(0, second).split("\n").length - 1, character: 0 });
    assert.equal(titles.length, 5, titles.join("\n"));
    assert.ok(titles.every((t) => t.startsWith("Same rewrite as you just made at line")), titles.join("\n"));
    assert.equal(done, plugins.replaceAll("registry.register(", "registry.add("));
    // The habit from the history, in a file just opened: one code action per call site left, applied.
    const jobs = pathToFileURL(path.join(REPO!, "app", "jobs.py")).href;
    await connection.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri: jobs, languageId: "python", version: 1, text: JOBS!.before },
    });
    const offered = await connection.sendRequest(CodeActionRequest.type, {
      textDocument: { uri: jobs },
      range: wholeDocument(JOBS!.before.split("\n").length),
      context: { diagnostics: [] },
    });
    assert.deepEqual(nextEdits(offered ?? [], jobs).map((e) => e.action.title), Array(2).fill("Your usual edit: logging.warn → logging.warning (3 times since 2024-03)"));
    const [rewritten] = await applyAll(jobs, JOBS!.before, { line: 0, character: 0 });
    assert.equal(rewritten, JOBS!.after);
    console.log(`e2e applied ${titles.length} next edits and 2 habits`);

    await connection.sendRequest(ShutdownRequest.type);
    await connection.sendNotification(ExitNotification.type);
    const hung = new Promise((resolve) => setTimeout(() => resolve("hung"), 10_000).unref()); // unref: no wait once it exits
    assert.equal(await Promise.race([exited, hung]), 0, stderr);
  } finally {
    connection.dispose();
    if (child.exitCode === null) {
      child.kill();
    }
  }
});

// tests/test_snippets.py's history: one test's shape written in 5 commits with 5 names; the double ships it as a
// snippet, which the server offers as a Snippet completion item to a client that expands snippets (as
// vscode-languageclient declares).
const SNIPPET_ARTIFACT = process.env.CODEDOUBLE_TEST_SNIPPET_ARTIFACT;
const SNIPPET_REPO = process.env.CODEDOUBLE_TEST_SNIPPET_REPO;
const SNIPPET_SKIP = SNIPPET_ARTIFACT && SNIPPET_REPO && PYTHON ? false : "set CODEDOUBLE_TEST_SNIPPET_ARTIFACT, CODEDOUBLE_TEST_SNIPPET_REPO and CODEDOUBLE_TEST_PYTHON";
const SNIPPET_BODY =
  "def ${1:test_parses_epsilon}():\n" +
  '    parsed = parse_config(${2:"epsilon.toml"})\n' +
  '    assert parsed.name == ${3:"epsilon"}\n' +
  "    assert parsed.errors == []$0";

test("e2e: the engineer's recurring test shape comes as a Snippet completion item", { skip: SNIPPET_SKIP, timeout: 180_000 }, async () => {
  const config = configFrom({ pythonPath: PYTHON, artifact: SNIPPET_ARTIFACT, debounceMs: 0, workspaceContext: false });
  const { command, args } = serverCommand(config);
  const child = spawn(command, args, { cwd: SNIPPET_REPO, stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const connection = createMessageConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
  connection.listen();
  try {
    const root = pathToFileURL(SNIPPET_REPO!).href;
    await connection.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri: root,
      workspaceFolders: [{ uri: root, name: path.basename(SNIPPET_REPO!) }],
      capabilities: { textDocument: { completion: { completionItem: { snippetSupport: true } } } },
      initializationOptions: toInitializationOptions(config),
    });
    await connection.sendNotification(InitializedNotification.type, {});
    let got = await connection.sendRequest<Status>("codedouble/status", {});
    for (const deadline = Date.now() + READY_MS; !["ready", "missing", "broken"].includes(got.state) && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      got = await connection.sendRequest<Status>("codedouble/status", {});
    }
    assert.equal(got.state, "ready", `${JSON.stringify(got)}\n${stderr}`);

    // A new test file, `def ` typed at the top level.
    const text = "from app.config import parse_config\n\n\ndef ";
    const uri = pathToFileURL(path.join(SNIPPET_REPO!, "tests", "test_zeta.py")).href;
    await connection.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri, languageId: "python", version: 1, text },
    });
    const position = { line: 3, character: 4 };
    const answer = await connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position });
    const items = Array.isArray(answer) ? answer : answer?.items ?? [];
    const snippets = items.filter((i) => i.insertTextFormat === InsertTextFormat.Snippet);
    assert.equal(snippets.length, 1, JSON.stringify(answer));
    const [item] = snippets;
    assert.equal(item.kind, CompletionItemKind.Snippet);
    assert.equal(item.label, "def test_parses_epsilon():");
    assert.match(item.detail ?? "", /^codedouble snippet: written 5 times in 5 commits, last \d{4}-\d\d-\d\d$/);
    const edit = item.textEdit as { newText: string; range: unknown };
    assert.equal(edit.newText, SNIPPET_BODY);
    assert.deepEqual(edit.range, { start: { line: 3, character: 0 }, end: position });
    console.log(`e2e snippet ${JSON.stringify(item.label)}: ${item.detail}`);

    await connection.sendRequest(ShutdownRequest.type);
    await connection.sendNotification(ExitNotification.type);
  } finally {
    connection.dispose();
    if (child.exitCode === null) {
      child.kill();
    }
  }
});
