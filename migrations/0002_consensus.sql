-- The consensus node's own state. One database per node, so no node column: the database is the node.

-- Pacemaker state per protocol instance (one per feed and configuration), so a restarted oracle
-- resumes in its epoch (ocr-and-sources.md A.1.3).
CREATE TABLE ocr_pacemaker_state (
    config_digest bytea PRIMARY KEY CHECK (length(config_digest) = 16),
    feed text NOT NULL,
    epoch bigint NOT NULL CHECK (epoch >= 0),
    highest_sent_epoch bigint NOT NULL CHECK (highest_sent_epoch >= 0),
    highest_received_epochs bigint[] NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every (epoch, round) this oracle signed a report for, with what it signed: the guard that a
-- restarted oracle never signs a different report for the same (epoch, round).
CREATE TABLE ocr_signed_rounds (
    config_digest bytea NOT NULL CHECK (length(config_digest) = 16),
    epoch bigint NOT NULL CHECK (epoch >= 0),
    round smallint NOT NULL CHECK (round BETWEEN 0 AND 255),
    report_hash bytea NOT NULL CHECK (length(report_hash) = 32),
    signed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (config_digest, epoch, round)
);

-- Reports the DON finalized (more than f FINAL-ECHOs), exactly as they go on chain.
CREATE TABLE ocr_finalized_reports (
    config_digest bytea NOT NULL CHECK (length(config_digest) = 16),
    epoch bigint NOT NULL CHECK (epoch >= 0),
    round smallint NOT NULL CHECK (round BETWEEN 0 AND 255),
    feed text NOT NULL,
    report bytea NOT NULL,
    signatures bytea[] NOT NULL,
    observers smallint[] NOT NULL,
    observations numeric[] NOT NULL,
    answer numeric NOT NULL,
    finalized_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (config_digest, epoch, round)
);
CREATE INDEX ocr_finalized_reports_feed_latest ON ocr_finalized_reports (feed, epoch DESC, round DESC);
CREATE INDEX ocr_finalized_reports_age ON ocr_finalized_reports (finalized_at);

-- Finalized reports waiting to be transmitted on chain.
CREATE TABLE ocr_pending_transmissions (
    config_digest bytea NOT NULL,
    epoch bigint NOT NULL,
    round smallint NOT NULL,
    feed text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (config_digest, epoch, round),
    FOREIGN KEY (config_digest, epoch, round)
        REFERENCES ocr_finalized_reports (config_digest, epoch, round) ON DELETE CASCADE
);
