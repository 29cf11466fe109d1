-- The warehouse tables reconciliation reads (docker-compose's PostgreSQL runs this once).
CREATE TABLE IF NOT EXISTS daily_user_stats (
    user_id text NOT NULL,
    day date NOT NULL,                -- local day in segmenter's time_zone
    spend numeric(14, 2) NOT NULL,    -- currency units, refunds negative
    activities integer NOT NULL,
    active_seconds double precision NOT NULL,
    PRIMARY KEY (day, user_id)
);
CREATE TABLE IF NOT EXISTS signups (
    user_id text PRIMARY KEY,
    signup_at timestamptz NOT NULL
);
