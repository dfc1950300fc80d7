-- Registry credentials stored in refit: the user name in the clear (it is
-- shown), the password sealed with the server's secret key (AES-256-GCM,
-- bound to host and user name), never returned by the API.
CREATE TABLE registry_credentials (
    host       TEXT PRIMARY KEY,
    username   TEXT NOT NULL,
    sealed     BYTEA NOT NULL,
    updated_at TEXT NOT NULL
);
