import assert from "node:assert/strict";
import { test } from "node:test";
import { formatStatusBar, formatStatusDetail, Status } from "../status";

const READY: Status = {
  state: "ready",
  problem: "",
  artifact: "/home/me/.local/share/codedouble/doubles/abc",
  provenance: {
    repository: "/src/app",
    head: "0123456789abcdef0123456789abcdef01234567",
    created: "2025-01-02T03:04:05+00:00",
    records: 12345,
    heldout_commits: 20,
    validation_loss: 1.23456,
    parameters: 2_500_000,
  },
  latency_ms: { count: 42, p50: 12.4, p95: 80.2 },
  cache: { hits: 7, misses: 35, typed_ahead: 3 },
  options: { languages: [], exclude: [], maxLines: 8, debounceMs: 0 },
};

test("the detail says how many suggestions were shown and taken, once there were requests", () => {
  const feedback = { requests: 40, answered: 10, shown: 4, shown_rate: 0.25, accepted: 1, accepted_chars: 20, rejected: 2, precision: 0.25, log: null };
  assert.equal(
    formatStatusDetail({ ...READY, feedback }).split("\n").at(-1),
    "Shown: 4 suggestions (25% of requests); accepted 1 (20 characters), precision 25%",
  );
  // Before the editor reports an acceptance there is no precision to speak of.
  assert.equal(
    formatStatusDetail({ ...READY, feedback: { ...feedback, accepted: 0, accepted_chars: 0, precision: null } }).split("\n").at(-1),
    "Shown: 4 suggestions (25% of requests); accepted 0 (0 characters)",
  );
  assert.equal(formatStatusDetail({ ...READY, feedback: { ...feedback, requests: 0 } }), formatStatusDetail(READY));
});

test("the status bar: one short line per state", () => {
  assert.equal(formatStatusBar(READY), "$(sparkle) codedouble: ready · p50 12 ms");
  assert.equal(formatStatusBar({ ...READY, latency_ms: { count: 1, p50: 3.14, p95: 3.14 } }), "$(sparkle) codedouble: ready · p50 3.1 ms");
  assert.equal(formatStatusBar({ ...READY, latency_ms: { count: 0, p50: null, p95: null } }), "$(sparkle) codedouble: ready");
  assert.equal(formatStatusBar({ state: "loading" }), "$(sync~spin) codedouble: loading");
  assert.equal(formatStatusBar({ state: "starting" }), "$(sync~spin) codedouble: loading");
  assert.equal(formatStatusBar(undefined), "$(sync~spin) codedouble: starting");
  assert.equal(formatStatusBar({ state: "missing", problem: "no double" }), "$(circle-slash) codedouble: no double");
  assert.equal(formatStatusBar({ state: "broken" }), "$(error) codedouble: broken");
  assert.equal(formatStatusBar({ state: "stale" }), "$(history) codedouble: stale double");
  assert.equal(formatStatusBar({ state: "stopped" }), "$(debug-disconnect) codedouble: stopped");
  assert.equal(formatStatusBar({ state: "dreaming" }), "$(question) codedouble: dreaming");
});

test("the detail names the double, where it came from, and how fast it answers", () => {
  assert.equal(
    formatStatusDetail(READY),
    [
      "codedouble: ready",
      "Double: /home/me/.local/share/codedouble/doubles/abc",
      "Trained on: /src/app at 0123456789ab",
      "Created: 2025-01-02T03:04:05+00:00",
      "12.3k records · 20 held-out commits · 2.5M parameters · validation loss 1.235",
      "Latency: p50 12 ms, p95 80 ms over 42 completions",
      "Cache: 7 hits, 35 misses, 3 typed ahead",
    ].join("\n"),
  );
});

test("a double of several repositories names each history it learned from", () => {
  const two: Status = {
    ...READY,
    provenance: {
      ...READY.provenance,
      repositories: [
        { path: "/src/app", head: "0123456789abcdef0123456789abcdef01234567" },
        { path: "/src/lib", head: "fedcba9876543210fedcba9876543210fedcba98" },
      ],
    },
  };
  assert.equal(formatStatusDetail(two).split("\n")[2], "Trained on: /src/app at 0123456789ab, /src/lib at fedcba987654");
});

test("the detail of a double that is missing or broken leads with the problem", () => {
  const missing: Status = {
    state: "missing",
    problem: "codedouble: no double for /src/app yet; create one with `codedouble mine`",
    artifact: null,
    provenance: {},
    latency_ms: { count: 0, p50: null, p95: null },
    cache: { hits: 0, misses: 0, typed_ahead: 0 },
  };
  assert.equal(
    formatStatusDetail(missing),
    "codedouble: missing\ncodedouble: no double for /src/app yet; create one with `codedouble mine`\nCache: 0 hits, 0 misses, 0 typed ahead",
  );
  const broken = formatStatusDetail({ state: "broken", problem: "codedouble: the double at /d cannot be used: bad", artifact: "/d" });
  assert.equal(broken, "codedouble: broken\ncodedouble: the double at /d cannot be used: bad\nDouble: /d");
  assert.equal(formatStatusDetail(undefined), "codedouble: waiting for the server");
});

test("the detail says why this double is served, and when it is stale", () => {
  const fromDefault = formatStatusDetail({
    state: "ready",
    artifact: "/d",
    source: "your default double (/src/new has no double of its own)",
    stale: { since: "2026-11-28T10:00:00+00:00", rule: "commit abc" },
  });
  assert.equal(
    fromDefault,
    [
      "codedouble: ready",
      "Double: /d",
      "Because: your default double (/src/new has no double of its own)",
      "Stale: trained on data you removed on 2026-11-28",
    ].join("\n"),
  );
});
