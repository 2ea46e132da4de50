-- Fixed-window rate-limit counters shared by every API process.
CREATE TABLE rate_limit_windows (
    key          text        NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer     NOT NULL CHECK (hits >= 0),
    PRIMARY KEY (key, window_start)
);

CREATE INDEX rate_limit_windows_start_idx ON rate_limit_windows (window_start);
