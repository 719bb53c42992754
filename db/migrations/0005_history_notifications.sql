-- The candidate deployment keeps users' recent histories and item titles in memory; these tell it what changed.
-- `interactions` carries the internal ids of the users whose interactions changed, comma-separated, or '*' for
-- "anyone" (a truncate, or more users than one notification holds).
CREATE FUNCTION notify_interactions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    users text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('interactions', '*');
        RETURN NULL;
    END IF;
    SELECT CASE WHEN count(DISTINCT user_id) > 500 THEN '*' ELSE string_agg(DISTINCT user_id::text, ',') END
        INTO users FROM changed;
    IF users IS NOT NULL THEN
        PERFORM pg_notify('interactions', users);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER interactions_inserted AFTER INSERT ON interactions
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_interactions();
CREATE TRIGGER interactions_updated AFTER UPDATE ON interactions
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_interactions();
CREATE TRIGGER interactions_deleted AFTER DELETE ON interactions
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_interactions();
CREATE TRIGGER interactions_truncated AFTER TRUNCATE ON interactions
    FOR EACH STATEMENT EXECUTE FUNCTION notify_interactions();

CREATE FUNCTION notify_items() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('items', '');
    RETURN NULL;
END $$;

CREATE TRIGGER items_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON items
    FOR EACH STATEMENT EXECUTE FUNCTION notify_items();
