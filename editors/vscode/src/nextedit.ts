// codedouble: Apply Next Edit. The server proposes next edits as `refactor.rewrite` code actions (the
// lightbulb shows them at the cursor); this picks the one at or after the cursor among those of the whole
// document. No `vscode` import, so node's test runner can load it.

export const NEXT_EDIT_KIND = "refactor.rewrite";

export interface Position {
  line: number;
  character: number;
}

export interface TextEdit {
  range: { start: Position; end: Position };
  newText: string;
}

/** A code action as the server sends it (LSP JSON). */
export interface LspCodeAction {
  title: string;
  kind?: string;
  edit?: { changes?: Record<string, TextEdit[]> };
}

export interface NextEdit {
  action: LspCodeAction;
  edit: TextEdit;
}

function before(a: Position, b: Position): boolean {
  return a.line < b.line || (a.line === b.line && a.character < b.character);
}

/** Our proposals for the document `uri`, in document order. */
export function nextEdits(actions: readonly unknown[] | null | undefined, uri: string): NextEdit[] {
  const out: NextEdit[] = [];
  for (const action of actions ?? []) {
    const a = action as LspCodeAction;
    const edit = a && a.kind === NEXT_EDIT_KIND ? a.edit?.changes?.[uri]?.[0] : undefined;
    if (edit) {
      out.push({ action: a, edit });
    }
  }
  return out.sort((x, y) => (before(x.edit.range.start, y.edit.range.start) ? -1 : before(y.edit.range.start, x.edit.range.start) ? 1 : 0));
}

/** The first proposal starting at or after the cursor, else the first of the document (the search wraps). */
export function pickNext(edits: readonly NextEdit[], cursor: Position): NextEdit | undefined {
  return edits.find((e) => !before(e.edit.range.start, cursor)) ?? edits[0];
}

/** The whole document as a request range: a line past the end means its end to the server. */
export function wholeDocument(lineCount: number): { start: Position; end: Position } {
  return { start: { line: 0, character: 0 }, end: { line: lineCount, character: 0 } };
}
