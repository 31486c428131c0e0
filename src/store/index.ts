// The history store's public surface: open a HistoryStore, push ConnRecords into its writer, query.
// Everything else in src/store is internal layout and machinery.

export {
  HistoryStore,
  DEFAULT_PRUNE_BATCH,
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
  type CommitInfo,
  type LiveEntry,
  type MaintJob,
  type MaintPlan,
  type Removal,
  type WriterCounters,
  type WriterOptions,
} from "./writer.js";
export { contributionOf, isBlocked, type Contribution } from "./schema.js";
