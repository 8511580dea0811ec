/**
 * Document boundaries and line streams.
 *
 * WikiText files (`wiki.*.tokens`, `wiki.*.raw`, the Hugging Face rows, the detokenised JSONL rows)
 * are one line per paragraph or heading. An article starts at a top-level heading line ` = Title = `;
 * ` = = Section = = ` and deeper headings stay inside the article. A handful of formula lines in the
 * data also look like ` = x = `; in the original files a real heading always follows a blank line, so
 * once a blank line has been seen in a stream a heading only counts right after one (`'auto'` mode).
 * Streams without blank lines (the blank-dropped CRLF re-export, the detokenised JSONL rows) fall back
 * to the pattern alone, which on the WikiText-2 test split finds 62 starts instead of 60.
 *
 * A document's text is its lines, each followed by "\n", exactly as in the file (no trimming), so the
 * concatenated documents reproduce the file (less a whitespace-only preamble before the first heading).
 */
import { Utf8TextChecker } from "./text-check.js";

/** True for a top-level WikiText heading line such as ` = Valkyria Chronicles III = `. */
export function isWikitextTitleLine(line: string): boolean {
  const t = line.trim();
  return t.length >= 5 && t.startsWith("= ") && t.endsWith(" =") && t[2] !== "=" && t[t.length - 3] !== "=";
}

/** How a heading must be preceded to start a document. */
export type BlankLineRule = "auto" | "required" | "ignored";

/** Streaming WikiText article splitter: push lines (without terminators), collect finished documents. */
export class WikitextDocumentSplitter {
  private lines: string[] = [];
  private prevBlank = true;
  private sawBlank = false;
  private started = false;

  /** Creates a splitter; `rule` decides whether a heading must follow a blank line. */
  constructor(private readonly rule: BlankLineRule = "auto") {}

  /** Adds one line; returns the document this line closed, if any. */
  push(line: string): string | undefined {
    const blank = line.trim() === "";
    let done: string | undefined;
    if (!blank && isWikitextTitleLine(line)) {
      const needBlank = this.rule === "required" || (this.rule === "auto" && this.sawBlank);
      if (!needBlank || this.prevBlank) {
        done = this.take();
        this.started = true;
      }
    }
    this.lines.push(line);
    if (blank) this.sawBlank = true;
    this.prevBlank = blank;
    return done;
  }

  /** Returns the last document, if any. */
  finish(): string | undefined {
    return this.take();
  }

  private take(): string | undefined {
    const lines = this.lines;
    this.lines = [];
    if (lines.length === 0) return undefined;
    const text = lines.map((l) => `${l}\n`).join("");
    // Text before the first heading is kept only when it has content.
    if (!this.started && text.trim() === "") return undefined;
    return text;
  }
}

/** Splits WikiText text (LF or CRLF) into articles. */
export function splitWikitextDocuments(text: string, rule: BlankLineRule = "auto"): string[] {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const sp = new WikitextDocumentSplitter(rule);
  const out: string[] = [];
  for (const l of lines) {
    const d = sp.push(l);
    if (d !== undefined) out.push(d);
  }
  const last = sp.finish();
  if (last !== undefined) out.push(last);
  return out;
}

/** Groups a line stream into WikiText articles. */
export async function* wikitextDocuments(
  lines: AsyncIterable<string> | Iterable<string>,
  rule: BlankLineRule = "auto",
): AsyncGenerator<string> {
  const sp = new WikitextDocumentSplitter(rule);
  for await (const l of lines) {
    const d = sp.push(l);
    if (d !== undefined) yield d;
  }
  const last = sp.finish();
  if (last !== undefined) yield last;
}

/**
 * Splits a UTF-8 byte stream into lines (LF or CRLF terminators removed; no empty line after a final terminator).
 * Bytes that are not UTF-8 text (see text-check.ts) throw a TextDataError naming `source` and the byte offset.
 */
export async function* linesFromChunks(chunks: AsyncIterable<Uint8Array | string>, source = "text input"): AsyncGenerator<string> {
  const dec = new Utf8TextChecker(source);
  let rest = "";
  for await (const c of chunks) {
    rest += typeof c === "string" ? c : dec.push(c);
    let i = rest.indexOf("\n");
    if (i < 0) continue;
    let start = 0;
    while (i >= 0) {
      const end = i > start && rest.charCodeAt(i - 1) === 13 ? i - 1 : i;
      yield rest.slice(start, end);
      start = i + 1;
      i = rest.indexOf("\n", start);
    }
    rest = rest.slice(start);
  }
  rest += dec.end();
  if (rest.length > 0) yield rest.endsWith("\r") ? rest.slice(0, -1) : rest;
}

/**
 * Turns a Hugging Face WikiText row into a file line: rows keep the file's trailing "\n" and blank
 * lines became "" rows, so "" maps back to the files' blank line " " and one trailing "\n" is removed.
 */
export function wikitextRowToLine(row: string): string {
  const line = row.endsWith("\n") ? row.slice(0, -1) : row;
  return line === "" ? " " : line;
}
