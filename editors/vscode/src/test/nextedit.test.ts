import assert from "node:assert/strict";
import { test } from "node:test";
import { LspCodeAction, nextEdits, pickNext, wholeDocument } from "../nextedit";

const URI = "file:///ws/app/a.py";
const at = (line: number, character: number, newText = "x"): LspCodeAction => ({
  title: `at ${line}:${character}`,
  kind: "refactor.rewrite",
  edit: { changes: { [URI]: [{ range: { start: { line, character }, end: { line, character: character + 3 } }, newText }] } },
});

test("nextEdits keeps our kind's edits of this document, in document order", () => {
  const other: LspCodeAction = { title: "fix", kind: "quickfix", edit: at(0, 0).edit };
  const elsewhere: LspCodeAction = { title: "b", kind: "refactor.rewrite", edit: { changes: { "file:///b.py": [] } } };
  const got = nextEdits([at(5, 2), other, at(1, 9), elsewhere, at(1, 4), { title: "no edit" }], URI);
  assert.deepEqual(got.map((e) => e.action.title), ["at 1:4", "at 1:9", "at 5:2"]);
  assert.deepEqual(nextEdits(null, URI), []);
});

test("pickNext takes the first at or after the cursor, and wraps", () => {
  const edits = nextEdits([at(1, 4), at(1, 9), at(5, 2)], URI);
  assert.equal(pickNext(edits, { line: 0, character: 0 })?.action.title, "at 1:4");
  assert.equal(pickNext(edits, { line: 1, character: 4 })?.action.title, "at 1:4"); // at the cursor
  assert.equal(pickNext(edits, { line: 1, character: 5 })?.action.title, "at 1:9");
  assert.equal(pickNext(edits, { line: 2, character: 0 })?.action.title, "at 5:2");
  assert.equal(pickNext(edits, { line: 9, character: 0 })?.action.title, "at 1:4"); // past the last: the first
  assert.equal(pickNext([], { line: 0, character: 0 }), undefined);
});

test("wholeDocument reaches past the last line", () => {
  assert.deepEqual(wholeDocument(3), { start: { line: 0, character: 0 }, end: { line: 3, character: 0 } });
});
