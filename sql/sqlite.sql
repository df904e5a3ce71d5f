-- inferwatch schema for SQLite (the embedded default). The SQLAlchemy tables in inferwatch/store.py mirror this
-- file; tests/test_store.py keeps the two in step. Times are UTC epoch milliseconds.

-- Reference profiles: one per model version; model_version '*' applies to every version
-- that has no profile of its own.
CREATE TABLE IF NOT EXISTS reference_profiles (
    model          TEXT    NOT NULL,
    model_version  TEXT    NOT NULL,
    source         TEXT    NOT NULL,
    n_rows         BIGINT  NOT NULL,
    profile        TEXT    NOT NULL,
    created_at_ms  BIGINT  NOT NULL,
    PRIMARY KEY (model, model_version)
);

-- Rows of the first N records of a model version while its reference is being built.
CREATE TABLE IF NOT EXISTS reference_partials (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    model          TEXT    NOT NULL,
    model_version  TEXT    NOT NULL,
    n_rows         BIGINT  NOT NULL,
    payload        BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS reference_partials_key
    ON reference_partials (model, model_version);

-- Rows of windows that are still open, written in the same transaction as the consumer
-- offsets that produced them (exactly-once counts across restarts).
CREATE TABLE IF NOT EXISTS window_partials (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    model            TEXT    NOT NULL,
    model_version    TEXT    NOT NULL,
    window_start_ms  BIGINT  NOT NULL,
    segment          INTEGER NOT NULL,
    n_rows           BIGINT  NOT NULL,
    payload          BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS window_partials_key
    ON window_partials (model, model_version, window_start_ms, segment);

-- Closed windows with their dataset-level drift decision. profile: the window's statistics as
-- JSON (counts, missing, moments, histogram on the reference's bin edges, category counts).
CREATE TABLE IF NOT EXISTS windows (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    model            TEXT    NOT NULL,
    model_version    TEXT    NOT NULL,
    window_start_ms  BIGINT  NOT NULL,
    window_end_ms    BIGINT  NOT NULL,
    segment          INTEGER NOT NULL,
    record_count     BIGINT  NOT NULL,
    close_reason     TEXT    NOT NULL,
    closed_at_ms     BIGINT  NOT NULL,
    status           TEXT    NOT NULL,
    n_columns        INTEGER NOT NULL,
    n_drifted        INTEGER NOT NULL,
    drift_share      REAL,
    dataset_drifted  BOOLEAN,
    profile          TEXT    NOT NULL,
    UNIQUE (model, model_version, window_start_ms, segment)
);

-- The raw values of each numeric column of a closed window, for the two-sample tests of a
-- backfill and the report: the column's finite values (all of them when n_values equals the
-- column's count in the window's profile, otherwise a uniform sample of n_values) as float64
-- little-endian, zstd-compressed. Deleted window.sample_retention_days after the window's end.
CREATE TABLE IF NOT EXISTS window_samples (
    window_id    BIGINT  NOT NULL REFERENCES windows (id) ON DELETE CASCADE,
    column_name  TEXT    NOT NULL,
    n_values     BIGINT  NOT NULL,
    payload      BLOB    NOT NULL,
    PRIMARY KEY (window_id, column_name)
);

-- One row per column of a closed window: the test, its statistic, raw and adjusted p-value, the
-- distances, and the missing-share test.
CREATE TABLE IF NOT EXISTS drift_results (
    window_id               BIGINT  NOT NULL REFERENCES windows (id) ON DELETE CASCADE,
    column_name             TEXT    NOT NULL,
    role                    TEXT    NOT NULL,
    kind                    TEXT    NOT NULL,
    method                  TEXT    NOT NULL,
    status                  TEXT    NOT NULL,
    statistic               REAL,
    p_value                 REAL,
    drifted                 BOOLEAN,
    psi                     REAL,
    js_distance             REAL,
    wasserstein_normalised  REAL,
    n_reference             BIGINT  NOT NULL,
    n_current               BIGINT  NOT NULL,
    missing_share           REAL,
    p_value_adjusted        REAL,
    neg_log10_p             REAL,
    low_confidence          BOOLEAN NOT NULL DEFAULT FALSE,
    effect_size             REAL,
    effect_size_name        TEXT,
    threshold               REAL,
    hellinger               REAL,
    total_variation         REAL,
    wasserstein             REAL,
    reference_missing_share REAL,
    missing_p_value         REAL,
    missing_drifted         BOOLEAN,
    PRIMARY KEY (window_id, column_name)
);

-- Next offset to read per consumer group, topic and partition; the source of truth on start.
CREATE TABLE IF NOT EXISTS consumer_offsets (
    group_id     TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    partition    INTEGER NOT NULL,
    next_offset  BIGINT  NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);

-- Highest event time seen per model version and source partition, and when (wall clock) a
-- record of it last arrived there; shared by the members of a consumer group, the watermark
-- of a model version is the lowest of its partitions' values, minus the allowed lateness.
CREATE TABLE IF NOT EXISTS watermarks (
    model              TEXT    NOT NULL,
    model_version      TEXT    NOT NULL,
    topic              TEXT    NOT NULL,
    partition          INTEGER NOT NULL,
    max_event_time_ms  BIGINT  NOT NULL,
    updated_at_ms      BIGINT  NOT NULL,
    PRIMARY KEY (model, model_version, topic, partition)
);

-- Whether each source partition has been read up to its end, as last reported by the member
-- reading it; a partition with a backlog holds the watermark back.
CREATE TABLE IF NOT EXISTS partition_states (
    topic          TEXT     NOT NULL,
    partition      INTEGER  NOT NULL,
    caught_up      BOOLEAN  NOT NULL,
    updated_at_ms  BIGINT   NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- The last BentoML schema line read per monitor (its directory, or the topic): the column roles
-- as JSON, written with the batch that read it, so a collector resuming past that line still
-- decodes the monitor's data lines.
CREATE TABLE IF NOT EXISTS bentoml_schemas (
    monitor        TEXT    NOT NULL,
    roles          TEXT    NOT NULL,
    updated_at_ms  BIGINT  NOT NULL,
    PRIMARY KEY (monitor)
);

-- State of each alert instance (one per rule, model version and, for per-column rules, column),
-- keyed by the fingerprint of its labels (the dedup key).
CREATE TABLE IF NOT EXISTS alert_instances (
    fingerprint     TEXT    NOT NULL,
    alertname       TEXT    NOT NULL,
    model           TEXT    NOT NULL,
    model_version   TEXT    NOT NULL,
    labels          TEXT    NOT NULL,
    annotations     TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    state_detail    TEXT    NOT NULL,
    last_window_id  BIGINT,
    updated_at_ms   BIGINT  NOT NULL,
    PRIMARY KEY (fingerprint)
);

-- Silences: label matchers muting notifications during [starts_at_ms, ends_at_ms).
CREATE TABLE IF NOT EXISTS silences (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    matchers        TEXT    NOT NULL,
    starts_at_ms    BIGINT  NOT NULL,
    ends_at_ms      BIGINT  NOT NULL,
    created_by      TEXT    NOT NULL,
    comment         TEXT    NOT NULL,
    created_at_ms   BIGINT  NOT NULL
);

-- Outgoing HTTP calls (alerting.outbox), written in the transaction that decided them and
-- delivered after by the outbox worker. target names a configured receiver or hook (URL and
-- credentials come from configuration, never stored); path is appended to its URL. A row is
-- pending until delivered_at_ms or dead_at_ms is set (dead: refused for good, expired at
-- expires_at_ms, or unknown target; last_error says why). next_attempt_at_ms is when a retry is
-- due (exponential backoff); lease_until_ms reserves a row for the worker sending it.
CREATE TABLE IF NOT EXISTS outbox (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key     TEXT    NOT NULL UNIQUE,
    target              TEXT    NOT NULL,
    method              TEXT    NOT NULL,
    path                TEXT    NOT NULL,
    body                TEXT    NOT NULL,
    content_type        TEXT    NOT NULL,
    created_at_ms       BIGINT  NOT NULL,
    expires_at_ms       BIGINT,
    next_attempt_at_ms  BIGINT  NOT NULL,
    attempts            INTEGER NOT NULL,
    last_error          TEXT,
    lease_until_ms      BIGINT,
    delivered_at_ms     BIGINT,
    dead_at_ms          BIGINT
);
-- the pending rows per target in order: what the worker's claim and per-target order read
CREATE INDEX IF NOT EXISTS outbox_pending
    ON outbox (target, id) WHERE delivered_at_ms IS NULL AND dead_at_ms IS NULL;

-- State of each request–response join (collector.join.RequestResponseJoin): waiting halves and
-- recently finished request ids, saved in the transaction that stores the batch's window rows
-- and offsets. Entries are stored in batches (Arrow payload in the layout of
-- RequestResponseJoin.pending); an entry that has left the state is listed in join_removed by
-- its sequence number until the batches are rewritten.
CREATE TABLE IF NOT EXISTS join_entries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    join_name  TEXT    NOT NULL,
    n_rows     BIGINT  NOT NULL,
    payload    BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS join_entries_name
    ON join_entries (join_name);

CREATE TABLE IF NOT EXISTS join_removed (
    join_name  TEXT    NOT NULL,
    seq        BIGINT  NOT NULL,
    PRIMARY KEY (join_name, seq)
);

-- Event-time clock of each join (request–response and label joins) and the next sequence
-- number a request–response join gives out.
CREATE TABLE IF NOT EXISTS join_clocks (
    join_name  TEXT    NOT NULL,
    clock_ms   BIGINT,
    next_seq   BIGINT  NOT NULL,
    PRIMARY KEY (join_name)
);

-- Predictions waiting for their label (collector.join.LabelJoin), purged once the join's clock
-- passes event_time_ms plus the label delay. predictions: JSON object of the predictions.*
-- columns the performance metrics need.
CREATE TABLE IF NOT EXISTS label_waiting_predictions (
    join_name      TEXT    NOT NULL,
    request_id     TEXT    NOT NULL,
    model          TEXT    NOT NULL,
    model_version  TEXT    NOT NULL,
    event_time_ms  BIGINT  NOT NULL,
    predictions    TEXT    NOT NULL,
    PRIMARY KEY (join_name, request_id, model)
);
CREATE INDEX IF NOT EXISTS label_waiting_predictions_time
    ON label_waiting_predictions (join_name, event_time_ms);

-- Labels that came before their prediction; model is '' when the label names none.
CREATE TABLE IF NOT EXISTS label_waiting_labels (
    join_name      TEXT    NOT NULL,
    request_id     TEXT    NOT NULL,
    model          TEXT    NOT NULL,
    label          TEXT    NOT NULL,
    event_time_ms  BIGINT  NOT NULL,
    PRIMARY KEY (join_name, request_id, model)
);
CREATE INDEX IF NOT EXISTS label_waiting_labels_time
    ON label_waiting_labels (join_name, event_time_ms);

-- Realized performance per window: the mergeable summary (confusion matrix, score histograms,
-- or regression sums; detectors.performance) of the window's predictions whose labels have
-- arrived, updated as labels keep arriving after the window closed.
CREATE TABLE IF NOT EXISTS window_performance (
    model            TEXT    NOT NULL,
    model_version    TEXT    NOT NULL,
    window_start_ms  BIGINT  NOT NULL,
    n_rows           BIGINT  NOT NULL,
    n_labelled       BIGINT  NOT NULL,
    summary          TEXT    NOT NULL,
    updated_at_ms    BIGINT  NOT NULL,
    PRIMARY KEY (model, model_version, window_start_ms)
);

-- Last call of each retraining hook per model version (alerting.retrain): the cooldown reads
-- the latest over a model's versions; written in the transaction that enqueues the call.
CREATE TABLE IF NOT EXISTS hook_calls (
    hook                  TEXT    NOT NULL,
    model                 TEXT    NOT NULL,
    model_version         TEXT    NOT NULL,
    last_called_ms        BIGINT  NOT NULL,
    last_idempotency_key  TEXT    NOT NULL,
    PRIMARY KEY (hook, model, model_version)
);
