/**
 * GPT-2 byte-level BPE (the `r50k_base` / `gpt2` ranks, vocabulary 50 257) through `gpt-tokenizer`,
 * fully offline. Documents are encoded as ordinary text: a literal "<|endoftext|>" inside a document is
 * encoded as the characters it spells (tiktoken's `disallowed_special=()`), so the only EOS ids in an
 * encoded corpus are the separators this module inserts after every document.
 */
import { decode as gpt2Decode, encode as gpt2Encode } from "gpt-tokenizer/encoding/gpt2";

/** The GPT-2 end-of-text id, used as the document separator. */
export const GPT2_EOS_ID = 50256;
/** GPT-2 vocabulary size (50 000 merges + 256 bytes + `<|endoftext|>`). */
export const GPT2_VOCAB_SIZE = 50257;

/** A text tokenizer as the data pipeline sees it. */
export interface Tokenizer {
  /** Stable name recorded in cache metadata (a different name means a different cache entry). */
  readonly name: string;
  /** Number of token ids; every id is in [0, vocabSize). */
  readonly vocabSize: number;
  /** Id appended after every document. */
  readonly eosId: number;
  /** Encodes plain text (special-token strings are treated as ordinary text). */
  encode(text: string): number[];
  /** Decodes ids back to text. */
  decode(ids: ArrayLike<number>): string;
}

const NO_SPECIAL = { disallowedSpecial: new Set<string>() };

/** The GPT-2 tokenizer (r50k_base ranks). */
export const gpt2Tokenizer: Tokenizer = {
  name: "gpt2",
  vocabSize: GPT2_VOCAB_SIZE,
  eosId: GPT2_EOS_ID,
  encode: (text: string): number[] => gpt2Encode(text, NO_SPECIAL),
  decode: (ids: ArrayLike<number>): string => gpt2Decode(Array.from(ids)),
};

/** Encodes one text with GPT-2 BPE (no EOS added). */
export function encode(text: string, tokenizer: Tokenizer = gpt2Tokenizer): number[] {
  if (typeof text !== "string") throw new Error(`encode: expected a string, got ${typeof text}`);
  return tokenizer.encode(text);
}

/** Decodes token ids to text; throws on ids outside the vocabulary. */
export function decode(ids: ArrayLike<number>, tokenizer: Tokenizer = gpt2Tokenizer): string {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= tokenizer.vocabSize) {
      throw new Error(`decode: id ${id} at position ${i} is outside the vocabulary [0, ${tokenizer.vocabSize})`);
    }
  }
  return tokenizer.decode(ids);
}

/** A growable Uint16 token buffer (every GPT-2 id fits: vocab < 65 536). */
export class TokenBuffer {
  private buf: Uint16Array;
  private n = 0;

  /** Creates an empty buffer with the given initial capacity. */
  constructor(capacity = 1 << 16) {
    this.buf = new Uint16Array(Math.max(16, capacity));
  }

  /** Number of tokens held. */
  get length(): number {
    return this.n;
  }

  /** Appends ids (each must be in [0, 65535]). */
  push(ids: ArrayLike<number>): void {
    const need = this.n + ids.length;
    if (need > this.buf.length) {
      let cap = this.buf.length;
      while (cap < need) cap *= 2;
      const next = new Uint16Array(cap);
      next.set(this.buf.subarray(0, this.n));
      this.buf = next;
    }
    for (let i = 0; i < ids.length; i++) this.buf[this.n + i] = ids[i]!;
    this.n = need;
  }

  /** Appends one id. */
  pushOne(id: number): void {
    if (this.n === this.buf.length) {
      const next = new Uint16Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.n++] = id;
  }

  /** A view of the tokens held (shares memory until the next push). */
  view(): Uint16Array {
    return this.buf.subarray(0, this.n);
  }

  /** Drops all tokens, keeping the capacity. */
  clear(): void {
    this.n = 0;
  }
}

/** Checks the tokenizer's ids fit the Uint16 storage used on disk. */
export function assertUint16Vocab(tokenizer: Tokenizer, who: string): void {
  if (tokenizer.vocabSize > 65536) {
    throw new Error(`${who}: tokenizer '${tokenizer.name}' has ${tokenizer.vocabSize} ids; Uint16 token storage needs at most 65536`);
  }
}

/** Encodes documents, each followed by EOS, into one Int32Array. */
export function encodeDocuments(docs: Iterable<string>, tokenizer: Tokenizer = gpt2Tokenizer): Int32Array {
  const parts: number[][] = [];
  let total = 0;
  let i = 0;
  for (const doc of docs) {
    if (typeof doc !== "string") throw new Error(`encodeDocuments: document ${i} is a ${typeof doc}, expected a string`);
    const ids = tokenizer.encode(doc);
    ids.push(tokenizer.eosId);
    parts.push(ids);
    total += ids.length;
    i++;
  }
  const out = new Int32Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Encodes documents, each followed by EOS, into a Uint16Array (half the memory of Int32Array). */
export function encodeDocumentsUint16(docs: Iterable<string>, tokenizer: Tokenizer = gpt2Tokenizer): Uint16Array {
  assertUint16Vocab(tokenizer, "encodeDocumentsUint16");
  const buf = new TokenBuffer();
  for (const doc of docs) {
    buf.push(tokenizer.encode(doc));
    buf.pushOne(tokenizer.eosId);
  }
  return buf.view().slice();
}
