-- A transaction whose client vanished (its request cancelled mid-way, its link left
-- half-open by an outage) keeps its row locks for as long as the session lives: every
-- delivery of that VOD's job then waits on the lock until statement_timeout, is never
-- acknowledged, and not even giving up can write `failed`. PostgreSQL ends such a
-- transaction instead; no transaction of ours idles more than milliseconds.
DO $$
BEGIN
    EXECUTE format(
        'ALTER DATABASE %I SET idle_in_transaction_session_timeout = %L',
        current_database(),
        '5s'
    );
END
$$;
