-- Book recommender: a reading history may name books outside the catalogue, preferences carry genre
-- weights and topics to avoid, and catalogue changes are announced so retriever replicas follow them.
-- Neither table was written to before this migration.

DROP TABLE reading_history;
CREATE TABLE reading_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The catalogue book, when the entry is one; a book read elsewhere keeps only its title and author.
    book_id     bigint REFERENCES books (id) ON DELETE SET NULL,
    title       text NOT NULL CHECK (length(title) > 0),
    author      text,
    genres      text[] NOT NULL DEFAULT '{}',
    rating      real CHECK (rating IS NULL OR (rating >= 0 AND rating <= 5)),
    review      text,
    read_at     date,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, title)
);
CREATE INDEX reading_history_user ON reading_history (user_id, read_at DESC NULLS LAST);

DROP TABLE reading_preferences;
CREATE TABLE reading_preferences (
    user_id        bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    genres         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(genres) = 'object'),
    reading_style  text,
    keywords       text[] NOT NULL DEFAULT '{}',
    avoid_topics   text[] NOT NULL DEFAULT '{}',
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION notify_books() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('books', '');
    RETURN NULL;
END $$;

CREATE TRIGGER books_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON books
    FOR EACH STATEMENT EXECUTE FUNCTION notify_books();
