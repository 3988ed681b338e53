-- Users of the platform (user.v1.User). Only the user-service writes this table.

CREATE TABLE users (
    -- Assigned by the service (UUIDv7).
    id           uuid        PRIMARY KEY,
    -- Stored as the user gave it; unique ignoring case (users_email_lower_key below).
    email        text        NOT NULL CHECK (char_length(email) BETWEEN 3 AND 320),
    display_name text        NOT NULL DEFAULT '' CHECK (char_length(display_name) <= 100),
    -- Assigned by the service, at microsecond precision.
    create_time  timestamptz NOT NULL
);

-- "Unique, compared case-insensitively": the index, not a lookup before the insert, enforces
-- it, so two concurrent CreateUser calls for one address cannot both succeed. The service maps
-- a violation of this index (by its name) to ALREADY_EXISTS.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

-- ListUsers' keyset pagination: ORDER BY create_time, id, continuing after a cursor.
CREATE INDEX users_create_time_id_idx ON users (create_time, id);
