/**
 * Checks that text data really is UTF-8 text before it is tokenised. Without it a binary file, a Latin-1 file
 * or a UTF-16 file decodes to replacement characters and NULs, tokenises without complaint and trains a model
 * on garbage. Rules:
 *
 * - the bytes must be valid UTF-8 (a byte-order mark EF BB BF at the start is allowed and dropped);
 * - no NUL byte anywhere (UTF-16 text and binary files have them; text never does);
 * - control characters other than tab, LF, VT, FF, CR and ESC make up at most 1 in 1 000 of the checked bytes.
 *
 * A failure names the file and the byte offset of the first offending byte. Text in another encoding is
 * converted first, e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt` (or `-f utf-16`).
 */

/** Fraction of control bytes (besides whitespace and ESC) above which data is taken for binary. */
const MAX_CONTROL_FRACTION = 0.001;

const HINT = "expected UTF-8 text; convert other encodings first (e.g. iconv -f latin1 -t utf-8 FILE > FILE.utf8)";

/** A text-data file that is not UTF-8 text. */
export class TextDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TextDataError";
  }
}

/**
 * Index of the first byte of `b` that is not part of a valid UTF-8 sequence, or -1. With `final` false an
 * incomplete sequence at the very end is not an error; its start is returned as `incompleteAt`.
 */
export function scanUtf8(b: Uint8Array, final = true): { invalidAt: number; incompleteAt: number } {
  let i = 0;
  const n = b.length;
  while (i < n) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0;
      else if (c === 0xed) hi = 0x9f; // no UTF-16 surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90;
      else if (c === 0xf4) hi = 0x8f;
    } else return { invalidAt: i, incompleteAt: -1 };
    for (let k = 1; k <= need; k++) {
      if (i + k >= n) return final ? { invalidAt: i, incompleteAt: -1 } : { invalidAt: -1, incompleteAt: i };
      const d = b[i + k]!;
      if (k === 1 ? d < lo || d > hi : d < 0x80 || d > 0xbf) return { invalidAt: i, incompleteAt: -1 };
    }
    i += need + 1;
  }
  return { invalidAt: -1, incompleteAt: -1 };
}

function isBadControl(c: number): boolean {
  return (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0b && c !== 0x0c && c !== 0x0d && c !== 0x1b) || c === 0x7f;
}

function hex(c: number): string {
  return `0x${c.toString(16).padStart(2, "0").toUpperCase()}`;
}

/**
 * Incremental checker: feed the bytes of one file in order (`push`), then `end`. Returns the decoded text of
 * each chunk (an incomplete sequence at a chunk's end is carried into the next).
 */
export class Utf8TextChecker {
  private offset = 0;
  private carry: Uint8Array = new Uint8Array(0);
  private controls = 0;
  private firstControl = -1;
  private readonly decoder = new TextDecoder("utf-8", { ignoreBOM: false });

  constructor(private readonly source: string) {}

  /** Validates and decodes the next chunk. */
  push(chunk: Uint8Array): string {
    const b = this.carry.length > 0 ? concat(this.carry, chunk) : chunk;
    const base = this.offset - this.carry.length;
    const { invalidAt, incompleteAt } = scanUtf8(b, false);
    if (invalidAt >= 0) this.fail(base + invalidAt, b[invalidAt]!);
    const end = incompleteAt >= 0 ? incompleteAt : b.length;
    this.checkControls(b, end, base);
    this.carry = incompleteAt >= 0 ? b.slice(incompleteAt) : new Uint8Array(0);
    this.offset += chunk.length;
    return this.decoder.decode(b.subarray(0, end), { stream: true });
  }

  /** Finishes the file: an incomplete final sequence or too many control bytes is an error. */
  end(): string {
    if (this.carry.length > 0) this.fail(this.offset - this.carry.length, this.carry[0]!, " (the file ends inside a multi-byte sequence)");
    if (this.controls > Math.max(1, MAX_CONTROL_FRACTION * this.offset)) {
      throw new TextDataError(
        `${this.source} has ${this.controls} control bytes in ${this.offset} bytes (first at byte offset ${this.firstControl}); it looks like binary data, ${HINT}`,
      );
    }
    return this.decoder.decode();
  }

  private checkControls(b: Uint8Array, end: number, base: number): void {
    for (let i = 0; i < end; i++) {
      const c = b[i]!;
      if (c >= 0x20 && c !== 0x7f) continue;
      if (c === 0)
        throw new TextDataError(`${this.source} has a NUL byte at byte offset ${base + i}; it is binary or UTF-16 data, ${HINT}`);
      if (isBadControl(c)) {
        if (this.firstControl < 0) this.firstControl = base + i;
        this.controls++;
      }
    }
  }

  private fail(at: number, byte: number, extra = ""): never {
    throw new TextDataError(`${this.source} is not valid UTF-8: byte ${hex(byte)} at byte offset ${at}${extra}; ${HINT}`);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Decodes a whole file's bytes as UTF-8 text, or throws a TextDataError naming `source` and the byte offset. */
export function decodeTextStrict(bytes: Uint8Array, source: string): string {
  const c = new Utf8TextChecker(source);
  return c.push(bytes) + c.end();
}

/** Decodes a stream of byte chunks (one file) as UTF-8 text, chunk by chunk, with the checks of `decodeTextStrict`. */
export async function* decodeTextChunks(chunks: AsyncIterable<Uint8Array | string>, source: string): AsyncGenerator<string> {
  const c = new Utf8TextChecker(source);
  for await (const ch of chunks) {
    if (typeof ch === "string") yield ch;
    else yield c.push(ch);
  }
  const tail = c.end();
  if (tail.length > 0) yield tail;
}
