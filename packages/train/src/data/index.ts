/** Data pipeline of @qkvflow/train: GPT-2 tokenizer, token cache, downloads, data sets, batching, unigram baseline. */
export {
  GPT2_EOS_ID,
  GPT2_VOCAB_SIZE,
  TokenBuffer,
  assertUint16Vocab,
  decode,
  encode,
  encodeDocuments,
  encodeDocumentsUint16,
  gpt2Tokenizer,
  type Tokenizer,
} from "./tokenizer.js";
export {
  cachedTokenize,
  combinedSourceSha256,
  defaultCacheDir,
  fingerprintSources,
  readTokenCacheMeta,
  readTokenFile,
  resolveCacheDir,
  sanitizeKey,
  sha256File,
  sha256Text,
  tempPathFor,
  tokenCachePaths,
  writeFileAtomic,
  type CachedTokenizeOptions,
  type CachedTokens,
  type SourceFingerprint,
  type TokenCacheMeta,
} from "./cache.js";
export { downloadFile, localCopyHint, type DownloadOptions, type DownloadResult, type FetchLike } from "./download.js";
export {
  WikitextDocumentSplitter,
  isWikitextTitleLine,
  linesFromChunks,
  splitWikitextDocuments,
  wikitextDocuments,
  wikitextRowToLine,
  type BlankLineRule,
} from "./documents.js";
export { Pcg64, hfTrainTestSplit, numpyPermutation, seedSequenceState, type HeldOutSplit } from "./numpy-random.js";
export {
  findDataset,
  getDatasetSpec,
  listDatasets,
  loadDataset,
  type FindDatasetOptions,
  type LoadDatasetOptions,
  type ResolvedDataset,
  type SplitTokens,
} from "./datasets.js";
export {
  CANONICAL_SPLITS,
  SPLIT_ALIASES,
  canonicalSplit,
  type DatasetSpec,
  type DocumentOptions,
  type RemoteOptions,
  type RemoteVariant,
  type SplitSource,
} from "./sources/types.js";
export {
  WIKITEXT_FAMILIES,
  findWikitextFiles,
  wikitext103,
  wikitext103Detokenized,
  wikitext2,
  type WikitextFamily,
} from "./sources/wikitext.js";
export { OWT_SPLIT_SEED, OWT_TEST_SIZE, heldOutSources, openwebtext, type HeldOutOptions, type RowKind } from "./sources/openwebtext.js";
export type { FileKind } from "./sources/common.js";
export {
  extractZipEntries,
  fileAsyncBuffer,
  parquetFileMetadata,
  parquetRowCount,
  readJsonlField,
  readParquetColumn,
  readTextLines,
  zstdChunks,
} from "./sources/readers.js";
export {
  BatchSampler,
  countEvalWindows,
  countWindows,
  defaultPermute,
  evalBatches,
  type Batch,
  type BatchSamplerOptions,
  type EvalBatchOptions,
  type PermuteFn,
  type SamplerState,
  type TokenArray,
} from "./batching.js";
export { unigramCounts, unigramPerplexity, type UnigramOptions, type UnigramResult } from "./unigram.js";
export { TextDataError, Utf8TextChecker, decodeTextStrict, scanUtf8 } from "./text-check.js";
