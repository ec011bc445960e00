// The `codedouble.*` settings as the server wants them. No `vscode` import, so node's test runner can load it.

/** What `vscode.WorkspaceConfiguration` offers and the tests can fake: a value by key, relative to `codedouble`. */
export interface Config {
  get(key: string): unknown;
}

/** Values that `${workspaceFolder}` and a leading `~` stand for. */
export interface Places {
  workspaceFolder?: string;
  home?: string;
}

export interface ServerCommand {
  command: string;
  args: string[];
}

/** The server's options (server/options.py): camelCase keys, only those set. */
export interface InitializationOptions {
  artifact?: string;
  languages?: string[];
  exclude?: string[];
  maxLines?: number;
  debounceMs?: number;
  minConfidence?: number;
  feedbackLog?: boolean;
  workspaceContext?: boolean;
  refuseStale?: boolean;
  backend?: string;
  url?: string;
  model?: string;
  apiKeyEnv?: string;
  timeoutMs?: number;
  nextEdits?: boolean;
  nextEditMinPrecision?: number;
  snippets?: boolean;
}

export const DEFAULT_COMMAND: readonly string[] = ["codedouble", "serve"];
export const PYTHON_ARGS: readonly string[] = ["-m", "codedouble.trainer.cli", "serve"];

/** A plain object as a Config (tests, and settings that come from elsewhere). */
export function configFrom(values: Record<string, unknown>): Config {
  return { get: (key) => values[key] };
}

function text(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

function strings(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) {
    return undefined;
  }
  const kept = value.filter((v): v is string => typeof v === "string" && v.trim() !== "").map((v) => v.trim());
  return kept.length > 0 ? kept : undefined;
}

/** `${workspaceFolder}`, `${userHome}` and a leading `~`, as VS Code users write paths in settings. */
export function expand(value: string, places: Places = {}): string {
  const home = places.home;
  let out = value;
  if (places.workspaceFolder !== undefined) {
    out = out.split("${workspaceFolder}").join(places.workspaceFolder);
  }
  if (home !== undefined) {
    out = out.split("${userHome}").join(home);
    if (out === "~" || out.startsWith("~/")) {
      out = home + out.slice(1);
    }
  }
  return out;
}

/** The server's options from the settings; unset or empty values are left out so that the server's defaults
 * apply. Numbers go as they are: the server checks their range and says which one is wrong. */
export function toInitializationOptions(config: Config, places: Places = {}): InitializationOptions {
  const options: InitializationOptions = {};
  const artifact = text(config.get("artifact"));
  if (artifact !== undefined) {
    options.artifact = expand(artifact, places);
  }
  const languages = strings(config.get("languages"));
  if (languages !== undefined) {
    options.languages = languages;
  }
  const exclude = strings(config.get("exclude"));
  if (exclude !== undefined) {
    options.exclude = exclude;
  }
  for (const key of ["maxLines", "debounceMs", "minConfidence", "timeoutMs", "nextEditMinPrecision"] as const) {
    const value = config.get(key);
    if (typeof value === "number" && Number.isFinite(value)) {
      options[key] = value;
    }
  }
  if (config.get("feedbackLog") === false) {
    options.feedbackLog = false; // the server logs by default; only the opt-out is sent
  }
  const workspaceContext = config.get("workspaceContext");
  if (typeof workspaceContext === "boolean") {
    options.workspaceContext = workspaceContext;
  }
  if (config.get("nextEdits") === false) {
    options.nextEdits = false; // on by default in the server; only the opt-out is sent
  }
  if (config.get("snippets") === false) {
    options.snippets = false; // the server offers the double's snippets by default; only the opt-out is sent
  }
  if (config.get("refuseStale") === true) {
    options.refuseStale = true; // the server serves a stale double with a warning by default; only the opt-in is sent
  }
  // The remote engine: strings go as they are (the server checks the backend's name and the URL); `local`, the
  // default, is left out so that `codedouble serve --backend ...` on the command line still applies.
  for (const key of ["backend", "url", "model", "apiKeyEnv"] as const) {
    const value = text(config.get(key));
    if (value !== undefined && !(key === "backend" && value === "local")) {
      options[key] = value;
    }
  }
  return options;
}

/** The `workspace/didChangeConfiguration` params that carry changed settings to a running server. */
export function configurationChange(config: Config, places: Places = {}): { settings: { codedouble: InitializationOptions } } {
  return { settings: { codedouble: toInitializationOptions(config, places) } };
}

/** How to start the server: `<pythonPath> -m codedouble.trainer.cli serve` when a Python is named (a venv that
 * is not on PATH), else the `command` array, else `codedouble serve`. */
export function serverCommand(config: Config, places: Places = {}): ServerCommand {
  const python = text(config.get("pythonPath"));
  if (python !== undefined) {
    return { command: expand(python, places), args: [...PYTHON_ARGS] };
  }
  const [command, ...args] = (strings(config.get("command")) ?? [...DEFAULT_COMMAND]).map((part) => expand(part, places));
  return { command, args };
}

/** Whether a settings change needs a new server process rather than a `workspace/didChangeConfiguration`. */
export const RESTART_KEYS: readonly string[] = ["command", "pythonPath"];
