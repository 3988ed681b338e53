-- The transactional outbox: events written in the same transaction as the order they announce,
-- and published to NATS afterwards by the service's relay. An order is never committed without
-- its event, nor an event published for an order that was rolled back; a publish that fails is
-- retried until it succeeds (at-least-once delivery: consumers deduplicate on the event id).

CREATE TABLE outbox_events (
    -- The event's event_id (UUIDv7), the same on every redelivery.
    id           uuid        PRIMARY KEY,
    -- The NATS subject, e.g. orders.created.
    subject      text        NOT NULL,
    -- The event's binary protobuf encoding, exactly as it is published.
    payload      bytea       NOT NULL,
    create_time  timestamptz NOT NULL DEFAULT now(),
    -- Not published before this time: a relay's lease on the row while it publishes, then the
    -- backoff after a failed attempt.
    available_at timestamptz NOT NULL DEFAULT now(),
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text
);

-- The relay's query: rows due now, oldest first.
CREATE INDEX outbox_events_available_at_idx ON outbox_events (available_at, create_time);
