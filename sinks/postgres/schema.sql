-- Tables of the postgres sink (docs/sinks.md): the latest status of every order and its lines.
-- Applied on every sink start; idempotent. A row only ever moves to a higher seq.

CREATE TABLE IF NOT EXISTS order_status (
    order_id           text        PRIMARY KEY,
    seq                bigint      NOT NULL,
    status             text        NOT NULL,
    previous_status    text,
    customer_id        text,
    channel            text,
    region             text,
    currency           text,
    holds              text[]      NOT NULL,
    invoiced_minor     bigint      NOT NULL,
    paid_minor         bigint      NOT NULL,
    refunded_minor     bigint      NOT NULL,
    open_balance_minor bigint      NOT NULL,
    placed_at          timestamptz,
    accepted_at        timestamptz,
    allocated_at       timestamptz,
    shipped_at         timestamptz,
    delivered_at       timestamptz,
    invoiced_at        timestamptz,
    paid_at            timestamptz,
    closed_at          timestamptz,
    cancelled_at       timestamptz,
    open_breaches      jsonb       NOT NULL,  -- [{milestone, due_at, detected_at}], epoch millis
    exceptions         jsonb       NOT NULL,  -- [{code, detail, cause_event_id}]
    cause_event_id     text        NOT NULL,
    cause_event_type   text        NOT NULL,
    correlation_id     text,
    occurred_at        timestamptz NOT NULL,
    emitted_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()  -- when the sink last wrote the row
);

CREATE INDEX IF NOT EXISTS order_status_by_status ON order_status (status);
CREATE INDEX IF NOT EXISTS order_status_by_region_channel ON order_status (region, channel);

-- Replaced together with their order row, in the same transaction, so lines and header always
-- belong to the same seq.
CREATE TABLE IF NOT EXISTS order_lines (
    order_id     text        NOT NULL REFERENCES order_status (order_id) ON DELETE CASCADE,
    line_id      text        NOT NULL,
    seq          bigint      NOT NULL,
    sku          text        NOT NULL,
    warehouse_id text,
    ordered      bigint      NOT NULL,
    cancelled    bigint      NOT NULL,
    allocated    bigint      NOT NULL,
    backordered  bigint      NOT NULL,
    shipped      bigint      NOT NULL,
    delivered    bigint      NOT NULL,
    invoiced     bigint      NOT NULL,
    promised_at  timestamptz,
    PRIMARY KEY (order_id, line_id)
);

CREATE INDEX IF NOT EXISTS order_lines_by_sku ON order_lines (sku);
