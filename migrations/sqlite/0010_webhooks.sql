-- Webhooks: outbound subscriptions signed per Standard Webhooks, their deliveries and every
-- attempt; inbound lead-capture forms and the idempotency keys of their submissions.

CREATE TABLE webhook_subscriptions (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- JSON array of event types (lead.created, lead.stage_changed, task.completed).
    event_types TEXT NOT NULL,
    -- The signing secret, sealed in `secrets` (purpose webhook_signing).
    secret_id TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT true,
    -- Why the server disabled it (410 Gone, repeated failures); null when a person did or it runs.
    disabled_reason TEXT,
    disabled_at TEXT,
    -- Deliveries that ended failed since the last one that got through.
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    -- The first failed attempt since the last success; null while the endpoint answers.
    failing_since TEXT,
    last_success_at TEXT,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX webhook_subscriptions_enabled ON webhook_subscriptions (org_id, enabled);

-- One event for one subscription. Its id is the `webhook-id` header: the same on every attempt
-- and replay, so receivers can drop duplicates. The body is fixed when the event happens.
CREATE TABLE webhook_deliveries (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- pending, delivered or failed
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_status_code BIGINT,
    last_latency_ms BIGINT,
    last_response_excerpt TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    -- When it was last queued (created or replayed): the retry window counts from here.
    queued_at TEXT NOT NULL,
    last_attempt_at TEXT,
    delivered_at TEXT,
    failed_at TEXT,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, subscription_id) REFERENCES webhook_subscriptions (org_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_by_subscription ON webhook_deliveries (org_id, subscription_id, created_at, id);

CREATE TABLE webhook_attempts (
    org_id TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    -- From 1 across the delivery's life (replays continue the count).
    attempt BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms BIGINT NOT NULL,
    -- At most 1 KiB of the response body.
    response_excerpt TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, delivery_id, attempt),
    FOREIGN KEY (org_id, delivery_id) REFERENCES webhook_deliveries (org_id, id) ON DELETE CASCADE
);

-- A public lead-capture form. The key is in the form's address, so it is public by design; it
-- names the organization, and the lookup before the tenant is known goes by its hash.
CREATE TABLE inbound_forms (
    org_id TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    form_key TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    -- null: the organization's first pipeline, and its first stage.
    pipeline_id TEXT,
    stage TEXT,
    -- JSON array of the lead fields the form accepts (UTM fields always are).
    fields TEXT NOT NULL,
    redirect_url TEXT,
    enabled BOOLEAN NOT NULL DEFAULT true,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE UNIQUE INDEX inbound_forms_name ON inbound_forms (org_id, name COLLATE NOCASE);

-- Submissions sent with an Idempotency-Key: a repeat within 24 hours answers with the lead the
-- first one created instead of creating another. The key is claimed before the lead is created
-- (in the same transaction), so a concurrent repeat waits for the first and then finds its lead.
CREATE TABLE inbound_submissions (
    org_id TEXT NOT NULL,
    form_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    lead_id TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (org_id, form_id, idempotency_key),
    FOREIGN KEY (org_id, form_id) REFERENCES inbound_forms (org_id, id) ON DELETE CASCADE
);
CREATE INDEX inbound_submissions_by_time ON inbound_submissions (org_id, form_id, created_at);
