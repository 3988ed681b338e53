-- Orders of the platform (order.v1.Order) and their lines. Only the order-service writes these.
--
-- user_id is a plain uuid, not a foreign key: users live in the user-service's own database,
-- and the order-service checks that a user exists through the user-service's API.

CREATE TABLE orders (
    -- Assigned by the service (UUIDv7).
    id            uuid        PRIMARY KEY,
    user_id       uuid        NOT NULL,
    -- order.v1.OrderStatus without its prefix; text rather than an enum type, so that adding a
    -- status is a CHECK change, not an ALTER TYPE.
    status        text        NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
    -- Every item of an order is priced in this one currency (ISO 4217).
    currency_code text        NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    -- Sum of quantity * unit price, in the currency's minor unit; computed by the service with
    -- checked arithmetic.
    total_minor   bigint      NOT NULL CHECK (total_minor >= 0),
    -- Assigned by the service, at microsecond precision.
    create_time   timestamptz NOT NULL
);

-- ListOrdersByUser's keyset pagination: one user's orders, newest first, continuing before a
-- cursor.
CREATE INDEX orders_user_id_create_time_id_idx ON orders (user_id, create_time DESC, id DESC);

CREATE TABLE order_items (
    order_id         uuid    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    -- The item's index in the order as the client sent it: items are returned in this order.
    position         integer NOT NULL CHECK (position BETWEEN 0 AND 99),
    sku              text    NOT NULL CHECK (char_length(sku) BETWEEN 1 AND 64),
    quantity         integer NOT NULL CHECK (quantity >= 1),
    unit_price_minor bigint  NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, position)
);
