// What the status bar and `codedouble: Show Status` say, from the server's `codedouble/status` answer.
// No `vscode` import, so node's test runner can load it.

export interface Provenance {
  repository?: string; // the primary one
  head?: string;
  repositories?: { path: string; head: string }[]; // every history the double learned from
  created?: string | null;
  records?: number;
  heldout_commits?: number;
  validation_loss?: number | null;
  parameters?: number | null;
}

/** The server's `codedouble/status` answer (server/server.py), or one the extension makes up when there is
 * no server to ask (state "stopped"). */
export interface Status {
  state: string; // starting, loading, ready, missing, broken, stale; "stopped" when the server is not running
  problem?: string;
  artifact?: string | null;
  source?: string; // why this double: the editor's setting, serve --artifact, the repository, your default
  stale?: { since?: string; rule?: string } | null; // trained on data since removed with `codedouble forget`
  provenance?: Provenance;
  latency_ms?: { count: number; p50: number | null; p95: number | null };
  cache?: { hits: number; misses: number; typed_ahead: number };
  options?: Record<string, unknown>;
  feedback?: Feedback;
}

/** What became of the suggestions since the server started (server/feedback.py). */
export interface Feedback {
  requests: number;
  answered: number;
  shown: number;
  shown_rate: number | null;
  accepted: number;
  accepted_chars: number;
  rejected: number;
  precision: number | null; // accepted / shown, once the editor has reported an acceptance
  log: string | null;
}

function ms(value: number): string {
  return value < 10 ? value.toFixed(1) : String(Math.round(value));
}

/** Short text for the status bar, with a codicon. */
export function formatStatusBar(status: Status | undefined): string {
  if (status === undefined) {
    return "$(sync~spin) codedouble: starting";
  }
  switch (status.state) {
    case "ready": {
      const p50 = status.latency_ms?.p50;
      return typeof p50 === "number" ? `$(sparkle) codedouble: ready · p50 ${ms(p50)} ms` : "$(sparkle) codedouble: ready";
    }
    case "starting":
    case "loading":
      return "$(sync~spin) codedouble: loading";
    case "missing":
      return "$(circle-slash) codedouble: no double";
    case "broken":
      return "$(error) codedouble: broken";
    case "stale":
      return "$(history) codedouble: stale double";
    case "stopped":
      return "$(debug-disconnect) codedouble: stopped";
    default:
      return `$(question) codedouble: ${status.state}`;
  }
}

function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** Several lines for the tooltip and the status command: which double, where it came from, how fast. */
export function formatStatusDetail(status: Status | undefined): string {
  if (status === undefined) {
    return "codedouble: waiting for the server";
  }
  const lines = [`codedouble: ${status.state}`];
  if (status.problem) {
    lines.push(status.problem);
  }
  if (status.artifact) {
    lines.push(`Double: ${status.artifact}`);
  }
  if (status.source) {
    lines.push(`Because: ${status.source}`);
  }
  if (status.stale) {
    lines.push(`Stale: trained on data you removed on ${(status.stale.since ?? "").slice(0, 10)}`);
  }
  const p = status.provenance ?? {};
  const histories = p.repositories && p.repositories.length > 0
    ? p.repositories
    : p.repository ? [{ path: p.repository, head: p.head ?? "" }] : [];
  if (histories.length > 0) {
    const named = histories.map((r) => `${r.path}${r.head ? ` at ${r.head.slice(0, 12)}` : ""}`);
    lines.push(`Trained on: ${named.join(", ")}`);
  }
  if (p.created) {
    lines.push(`Created: ${p.created}`);
  }
  const facts: string[] = [];
  if (typeof p.records === "number") facts.push(`${count(p.records)} records`);
  if (typeof p.heldout_commits === "number") facts.push(`${p.heldout_commits} held-out commits`);
  if (typeof p.parameters === "number") facts.push(`${count(p.parameters)} parameters`);
  if (typeof p.validation_loss === "number") facts.push(`validation loss ${p.validation_loss.toFixed(3)}`);
  if (facts.length > 0) {
    lines.push(facts.join(" · "));
  }
  const latency = status.latency_ms;
  if (latency && latency.count > 0 && typeof latency.p50 === "number" && typeof latency.p95 === "number") {
    lines.push(`Latency: p50 ${ms(latency.p50)} ms, p95 ${ms(latency.p95)} ms over ${latency.count} completions`);
  }
  const cache = status.cache;
  if (cache) {
    lines.push(`Cache: ${cache.hits} hits, ${cache.misses} misses, ${cache.typed_ahead} typed ahead`);
  }
  const feedback = status.feedback;
  if (feedback && feedback.requests > 0) {
    const rate = typeof feedback.shown_rate === "number" ? ` (${Math.round(100 * feedback.shown_rate)}% of requests)` : "";
    const precision = typeof feedback.precision === "number" ? `, precision ${Math.round(100 * feedback.precision)}%` : "";
    lines.push(`Shown: ${feedback.shown} suggestions${rate}; accepted ${feedback.accepted} (${feedback.accepted_chars} characters)${precision}`);
  }
  return lines.join("\n");
}
