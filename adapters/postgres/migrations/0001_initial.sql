-- Hounsfield initial schema: one table per aggregate, scalar fields as columns, nested value
-- objects as jsonb. Every timestamp is timestamptz (UTC in the domain). Aggregates that two
-- writers can meet carry a `version` for optimistic concurrency.

-- Tenants ---------------------------------------------------------------------------------

CREATE TABLE centres (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    contact_email text,
    contact_phone text,
    address       text,
    active        boolean NOT NULL DEFAULT true,
    auto_invoice  boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       integer NOT NULL DEFAULT 1
);
CREATE INDEX centres_active_name_idx ON centres (active, name);

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    username      text NOT NULL,
    email         text NOT NULL,
    full_name     text NOT NULL,
    role          text NOT NULL
                  CHECK (role IN ('admin', 'radiologist', 'technician', 'centre_manager')),
    centre_id     uuid REFERENCES centres (id),
    password_hash text NOT NULL,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    last_login_at timestamptz,
    version       integer NOT NULL DEFAULT 1,
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_admin_has_no_centre CHECK ((role = 'admin') = (centre_id IS NULL))
);
CREATE INDEX users_centre_role_idx ON users (centre_id, role);
CREATE INDEX users_role_idx ON users (role);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    centre_id    uuid NOT NULL REFERENCES centres (id),
    user_id      uuid REFERENCES users (id),
    prefix       text NOT NULL,
    secret_hash  text NOT NULL,
    scopes       text[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    expires_at   timestamptz,
    CONSTRAINT api_keys_prefix_key UNIQUE (prefix)
);
CREATE INDEX api_keys_centre_idx ON api_keys (centre_id, created_at);

-- Imaging archive -------------------------------------------------------------------------

CREATE TABLE studies (
    id                      uuid PRIMARY KEY,
    centre_id               uuid NOT NULL REFERENCES centres (id),
    code                    text NOT NULL,
    study_instance_uid      text NOT NULL,
    patient_name            text,
    patient_id              text,
    patient_age             text,
    patient_sex             text CHECK (patient_sex IN ('M', 'F', 'O')),
    patient_birth_date      date,
    modality                text NOT NULL,
    description             text,
    study_date              date,
    accession_number        text,
    urgency                 text NOT NULL CHECK (urgency IN ('routine', 'urgent', 'stat')),
    -- list order is "most urgent first": a rank the index can serve
    urgency_rank            smallint NOT NULL GENERATED ALWAYS AS (
                                CASE urgency WHEN 'stat' THEN 2 WHEN 'urgent' THEN 1 ELSE 0 END
                            ) STORED,
    status                  text NOT NULL,
    assigned_radiologist_id uuid REFERENCES users (id),
    uploaded_by             uuid,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    version                 integer NOT NULL DEFAULT 1,
    CONSTRAINT studies_code_key UNIQUE (code),
    CONSTRAINT studies_centre_uid_key UNIQUE (centre_id, study_instance_uid)
);
CREATE INDEX studies_order_idx ON studies (urgency_rank DESC, created_at DESC, id DESC);
CREATE INDEX studies_centre_order_idx
    ON studies (centre_id, urgency_rank DESC, created_at DESC, id DESC);
CREATE INDEX studies_centre_status_idx ON studies (centre_id, status);
CREATE INDEX studies_centre_modality_idx ON studies (centre_id, modality);
CREATE INDEX studies_centre_urgency_idx ON studies (centre_id, urgency);
CREATE INDEX studies_radiologist_idx ON studies (assigned_radiologist_id, status);
CREATE INDEX studies_patient_id_idx ON studies (centre_id, patient_id);
CREATE INDEX studies_study_date_idx ON studies (centre_id, study_date);
CREATE INDEX studies_created_at_idx ON studies (centre_id, created_at);

CREATE TABLE series (
    id                  uuid PRIMARY KEY,
    study_id            uuid NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    centre_id           uuid NOT NULL REFERENCES centres (id),
    series_instance_uid text NOT NULL,
    modality            text NOT NULL,
    series_number       integer,
    description         text,
    body_part_examined  text,
    created_at          timestamptz NOT NULL,
    CONSTRAINT series_study_uid_key UNIQUE (study_id, series_instance_uid)
);

CREATE TABLE instances (
    id                        uuid PRIMARY KEY,
    series_id                 uuid NOT NULL REFERENCES series (id) ON DELETE CASCADE,
    study_id                  uuid NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    centre_id                 uuid NOT NULL REFERENCES centres (id),
    sop_instance_uid          text NOT NULL,
    sop_class_uid             text NOT NULL,
    instance_number           integer,
    storage_key               text NOT NULL,
    size_bytes                bigint NOT NULL,
    content_type              text NOT NULL,
    transfer_syntax_uid       text,
    pixel_rows                integer,
    pixel_columns             integer,
    number_of_frames          integer NOT NULL DEFAULT 1,
    pixel_spacing             double precision[],
    slice_thickness           double precision,
    image_position_patient    double precision[],
    image_orientation_patient double precision[],
    window_center             double precision,
    window_width              double precision,
    header                    jsonb NOT NULL DEFAULT '{}',
    created_at                timestamptz NOT NULL,
    CONSTRAINT instances_centre_uid_key UNIQUE (centre_id, sop_instance_uid)
);
CREATE INDEX instances_series_idx ON instances (series_id, instance_number);
CREATE INDEX instances_study_idx ON instances (study_id);

-- Analysis --------------------------------------------------------------------------------

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    centre_id        uuid NOT NULL REFERENCES centres (id),
    study_id         uuid NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    series_id        uuid REFERENCES series (id) ON DELETE CASCADE,
    model_id         text NOT NULL,
    status           text NOT NULL,
    stage            text,
    progress         double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    message          text,
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 3,
    error_message    text,
    created_by       uuid,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    queued_at        timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    lease_expires_at timestamptz,
    version          integer NOT NULL DEFAULT 1
);
CREATE INDEX jobs_created_idx ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_centre_idx ON jobs (centre_id, created_at DESC);
CREATE INDEX jobs_status_idx ON jobs (status, created_at);
CREATE INDEX jobs_study_idx ON jobs (study_id, created_at DESC);
CREATE INDEX jobs_created_by_idx ON jobs (created_by, created_at DESC);
CREATE INDEX jobs_model_idx ON jobs (model_id, created_at DESC);
-- the recovery sweep at start-up
CREATE INDEX jobs_recoverable_idx ON jobs (created_at)
    WHERE status IN ('pending', 'queued', 'running');

CREATE TABLE analysis_results (
    id                  uuid PRIMARY KEY,
    job_id              uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    study_id            uuid NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    centre_id           uuid NOT NULL REFERENCES centres (id),
    model_id            text NOT NULL,
    model_version       text NOT NULL,
    detections          jsonb NOT NULL DEFAULT '[]',
    summary             text NOT NULL DEFAULT '',
    overall_confidence  double precision NOT NULL DEFAULT 0,
    image_quality_score double precision,
    input               jsonb NOT NULL,
    times               jsonb NOT NULL,
    segmentation_key    text,
    created_at          timestamptz NOT NULL,
    CONSTRAINT analysis_results_job_key UNIQUE (job_id)
);
CREATE INDEX analysis_results_study_idx ON analysis_results (study_id, created_at DESC);

-- Reports ---------------------------------------------------------------------------------

CREATE TABLE reports (
    id               uuid PRIMARY KEY,
    centre_id        uuid NOT NULL REFERENCES centres (id),
    study_id         uuid NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    findings         text NOT NULL,
    impression       text NOT NULL,
    type             text NOT NULL,
    status           text NOT NULL,
    is_ai_generated  boolean NOT NULL DEFAULT false,
    author_id        uuid,
    amends_report_id uuid REFERENCES reports (id) ON DELETE CASCADE,
    verified_by      uuid,
    verified_at      timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    version          integer NOT NULL DEFAULT 1
);
CREATE INDEX reports_created_idx ON reports (created_at DESC, id DESC);
CREATE INDEX reports_centre_idx ON reports (centre_id, created_at DESC);
CREATE INDEX reports_study_idx ON reports (study_id, created_at DESC);
CREATE INDEX reports_author_idx ON reports (author_id, created_at DESC);
CREATE INDEX reports_status_idx ON reports (centre_id, status);

-- Every stored state of a report, oldest first: verified reports are legal records.
CREATE TABLE report_versions (
    report_id   uuid NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    snapshot    jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (report_id, version)
);

-- Notes on instances ----------------------------------------------------------------------

CREATE TABLE measurements (
    id          uuid PRIMARY KEY,
    centre_id   uuid NOT NULL REFERENCES centres (id),
    instance_id uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    kind        text NOT NULL,
    points      jsonb NOT NULL,
    value       double precision NOT NULL,
    unit        text NOT NULL,
    label       text,
    frame       integer NOT NULL DEFAULT 1,
    author_id   uuid,
    created_at  timestamptz NOT NULL
);
CREATE INDEX measurements_instance_idx ON measurements (instance_id, created_at);

CREATE TABLE annotations (
    id          uuid PRIMARY KEY,
    centre_id   uuid NOT NULL REFERENCES centres (id),
    instance_id uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    text        text NOT NULL,
    position    double precision[] NOT NULL,
    frame       integer NOT NULL DEFAULT 1,
    author_id   uuid,
    created_at  timestamptz NOT NULL
);
CREATE INDEX annotations_instance_idx ON annotations (instance_id, created_at);

-- Billing ---------------------------------------------------------------------------------

CREATE TABLE price_list (
    id         uuid PRIMARY KEY,
    centre_id  uuid NOT NULL REFERENCES centres (id),
    modality   text NOT NULL,
    amount     numeric(14, 2) NOT NULL CHECK (amount >= 0),
    currency   text NOT NULL,
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version    integer NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX price_list_one_active_price_idx
    ON price_list (centre_id, modality) WHERE active;
CREATE INDEX price_list_centre_idx ON price_list (centre_id, created_at);

-- Invoices keep their study id but not a foreign key: an invoice is a financial record
-- that outlives the deletion of the study it billed (and must not leave a gap in numbers).
CREATE TABLE invoices (
    id           uuid PRIMARY KEY,
    centre_id    uuid NOT NULL REFERENCES centres (id),
    study_id     uuid NOT NULL,
    number       text NOT NULL,
    year         integer NOT NULL,
    sequence     integer NOT NULL CHECK (sequence >= 1),
    amount       numeric(14, 2) NOT NULL CHECK (amount >= 0),
    currency     text NOT NULL,
    status       text NOT NULL,
    issued_on    date NOT NULL,
    paid_at      timestamptz,
    cancelled_at timestamptz,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      integer NOT NULL DEFAULT 1,
    CONSTRAINT invoices_centre_year_sequence_key UNIQUE (centre_id, year, sequence),
    CONSTRAINT invoices_centre_number_key UNIQUE (centre_id, number)
);
CREATE UNIQUE INDEX invoices_one_active_per_study_idx
    ON invoices (study_id) WHERE status <> 'cancelled';
CREATE INDEX invoices_centre_issued_idx ON invoices (centre_id, issued_on DESC);
CREATE INDEX invoices_status_issued_idx ON invoices (status, issued_on DESC);
CREATE INDEX invoices_created_idx ON invoices (created_at DESC, id DESC);

-- The gap-free counter: the row is locked by the UPDATE until the transaction ends.
CREATE TABLE invoice_sequences (
    centre_id  uuid NOT NULL REFERENCES centres (id),
    year       integer NOT NULL,
    last_value integer NOT NULL,
    PRIMARY KEY (centre_id, year)
);

-- Audit -----------------------------------------------------------------------------------

-- No foreign keys: the audit trail outlives users, keys, centres and studies.
CREATE TABLE audit_events (
    id             uuid PRIMARY KEY,
    at             timestamptz NOT NULL,
    actor_kind     text NOT NULL,
    actor_id       uuid,
    actor_display  text NOT NULL,
    centre_id      uuid,
    action         text NOT NULL,
    resource_type  text NOT NULL,
    resource_id    text,
    outcome        text NOT NULL,
    client_address text,
    request_id     text,
    detail         text
);
CREATE INDEX audit_events_at_idx ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, at DESC);
CREATE INDEX audit_events_resource_idx ON audit_events (resource_type, resource_id, at DESC);
CREATE INDEX audit_events_centre_idx ON audit_events (centre_id, at DESC);
