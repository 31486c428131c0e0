// The history store's public surface: open a HistoryStore, push ConnRecords into its writer, query;
// and the DNS query log's lane (blocks encoded by dnslog.ts, written through the same writer).
// Everything else in src/store is internal layout and machinery.

export {
  HistoryStore,
  DEFAULT_PRUNE_BATCH,
  DEFAULT_QUERY_LOG_PRUNE_BLOCKS,
  DEFAULT_RETENTION_INTERVAL_MS,
  DEFAULT_ROLLUP_CACHE_HOURS,
  DEFAULT_SEARCH_MAX_SCAN,
  MAX_STATS_BUCKETS,
  type DiskStats,
  type HistoryOptions,
  type RangeQuery,
  type RetentionResult,
  type SearchOptions,
  type SearchResult,
  type StatsBucket,
  type TopEntry,
  type VerifyReport,
} from "./history.js";
export {
  HistoryWriter,
  liveEntryOf,
  DEFAULT_BATCH_MS,
  DEFAULT_BATCH_RECORDS,
  DEFAULT_MAX_PENDING,
  DEFAULT_MAX_PENDING_QUERY_ROWS,
  type CommitInfo,
  type LiveEntry,
  type MaintJob,
  type MaintPlan,
  type Removal,
  type WriterCounters,
  type WriterOptions,
} from "./writer.js";
export {
  contributionOf,
  isBlocked,
  qlogRowsOf,
  QK_FIRST_ID,
  QK_LAST_ID,
  QK_MAX_TIME,
  QK_MIN_TIME,
  QK_PREFIX_MAX,
  type Contribution,
  type QLogKey,
} from "./schema.js";
export {
  decodeQueryBlock,
  encodeQueryBlock,
  QBLOCK_MAX_ROWS,
  QBLOCK_ROW_BYTES,
  type QueryBlockCols,
} from "./dnslog.js";
