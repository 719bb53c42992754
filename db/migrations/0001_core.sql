-- Every pipeline's data. External ids are what clients send; bigint ids stay internal.

-- Recommender survey data ------------------------------------------------------------------
CREATE TABLE users (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id  text NOT NULL UNIQUE CHECK (length(external_id) BETWEEN 1 AND 200),
    sex          text,
    job          text,
    married      boolean,
    style        text,
    attributes   jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE items (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id  text NOT NULL UNIQUE CHECK (length(external_id) BETWEEN 1 AND 200),
    title        text NOT NULL CHECK (length(title) > 0),
    style        text,
    attributes   jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE interactions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    item_id      bigint NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    rating       real CHECK (rating IS NULL OR (rating >= 0 AND rating <= 10)),
    comment      text,
    occurred_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- The same event sent twice is one row.
    UNIQUE (user_id, item_id, occurred_at)
);
-- A user's history in time order (sequence models, the verbalizer's history).
CREATE INDEX interactions_user_time ON interactions (user_id, occurred_at, id);
-- Interactions that arrived since a model version was trained.
CREATE INDEX interactions_created ON interactions (created_at);
CREATE INDEX interactions_item ON interactions (item_id);

CREATE TABLE survey_responses (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('profile', 'book_emotion')),
    answers      jsonb NOT NULL CHECK (jsonb_typeof(answers) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX survey_responses_user ON survey_responses (user_id, kind, created_at DESC);

-- Book recommender -------------------------------------------------------------------------
CREATE TABLE books (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id   text NOT NULL UNIQUE CHECK (length(external_id) BETWEEN 1 AND 200),
    title         text NOT NULL CHECK (length(title) > 0),
    author        text,
    introduction  text,
    categories    text[] NOT NULL DEFAULT '{}',
    rating        real CHECK (rating IS NULL OR (rating >= 0 AND rating <= 10)),
    review_count  integer CHECK (review_count IS NULL OR review_count >= 0),
    pages         integer CHECK (pages IS NULL OR pages > 0),
    price         integer CHECK (price IS NULL OR price >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reading_history (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    book_id   bigint NOT NULL REFERENCES books (id) ON DELETE CASCADE,
    rating    real CHECK (rating IS NULL OR (rating >= 0 AND rating <= 10)),
    review    text,
    read_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, book_id)
);
CREATE INDEX reading_history_user_time ON reading_history (user_id, read_at);

CREATE TABLE reading_preferences (
    user_id     bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    genres      text[] NOT NULL DEFAULT '{}',
    authors     text[] NOT NULL DEFAULT '{}',
    notes       text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- RAG chatbot and keyword extractor --------------------------------------------------------
CREATE TABLE documents (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id  text NOT NULL UNIQUE CHECK (length(external_id) BETWEEN 1 AND 200),
    title        text NOT NULL CHECK (length(title) > 0),
    source       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE passages (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id  bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    chunk_no     integer NOT NULL CHECK (chunk_no >= 0),
    text         text NOT NULL CHECK (length(text) > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (document_id, chunk_no)
);
-- Index builds add passages that arrived since the last build.
CREATE INDEX passages_created ON passages (created_at, id);

CREATE TABLE qa_pairs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    question     text NOT NULL CHECK (length(question) > 0),
    answer       text NOT NULL CHECK (length(answer) > 0),
    document_id  bigint REFERENCES documents (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX qa_pairs_unique ON qa_pairs (question, answer, coalesce(document_id, 0));

CREATE TABLE keyword_pairs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    query       text NOT NULL UNIQUE CHECK (length(query) > 0),
    keywords    text[] NOT NULL CHECK (cardinality(keywords) > 0),
    source      text NOT NULL DEFAULT 'user',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Model registry -----------------------------------------------------------------------------
CREATE TABLE training_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline     text NOT NULL CHECK (pipeline IN ('lrurec', 'ranker', 'dpr', 'qa', 'kobart', 'books')),
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    parameters   jsonb NOT NULL DEFAULT '{}'::jsonb,
    metrics      jsonb NOT NULL DEFAULT '{}'::jsonb,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    CHECK (status <> 'failed' OR error IS NOT NULL),
    CHECK (finished_at IS NULL OR started_at IS NOT NULL)
);
CREATE INDEX training_runs_pipeline ON training_runs (pipeline, created_at DESC);

CREATE TABLE model_versions (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline         text NOT NULL CHECK (pipeline IN ('lrurec', 'ranker', 'dpr', 'qa', 'kobart', 'books')),
    version          text NOT NULL CHECK (length(version) > 0),
    artifact_path    text NOT NULL,
    metrics          jsonb NOT NULL DEFAULT '{}'::jsonb,
    status           text NOT NULL DEFAULT 'registered'
                     CHECK (status IN ('registered', 'active', 'retired', 'failed')),
    training_run_id  bigint REFERENCES training_runs (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (pipeline, version)
);
-- At most one active version per pipeline.
CREATE UNIQUE INDEX model_versions_one_active ON model_versions (pipeline) WHERE status = 'active';

-- Idempotent ingestion ------------------------------------------------------------------------
CREATE TABLE idempotency_keys (
    key             text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 200),
    endpoint        text NOT NULL,
    request_sha256  text NOT NULL,
    status_code     integer NOT NULL,
    response        jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
