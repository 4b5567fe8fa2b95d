-- Users, VODs and the idempotency of VOD creation.
CREATE TABLE IF NOT EXISTS users (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    role          text NOT NULL
);

CREATE TABLE IF NOT EXISTS vods (
    id                bigserial PRIMARY KEY,
    title             text NOT NULL,
    description       text NOT NULL DEFAULT '',
    file_name         text NOT NULL,
    duration_s        double precision,
    size_bytes        bigint,
    status            text NOT NULL DEFAULT 'uploaded'
        CHECK (status IN ('uploaded', 'transcoding', 'captioning', 'publishing', 'published', 'failed')),
    failure_reason    text,
    version           integer NOT NULL DEFAULT 1,
    cablecast_show_id integer,
    cablecast_vod_id  integer,
    job_id            text,
    -- The key makes a retried create return the first row: PostgreSQL, not Redis, is
    -- what guarantees one row per key, even under concurrent retries.
    idempotency_key   text UNIQUE,
    request_hash      text,
    created_by        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS vods_status_id ON vods (status, id);
