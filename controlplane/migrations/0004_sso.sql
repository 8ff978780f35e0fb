-- SAML single sign-on (src/sso): each organization's identity provider, the AuthnRequests we sent
-- (checked and consumed by InResponseTo), and the IDs of consumed assertions (one-time use, kept
-- until the assertion expires). Whether SSO is required is organizations.sso_required.
CREATE TABLE sso_configs (
    org_id TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    idp_entity_id TEXT NOT NULL,
    idp_sso_url TEXT NOT NULL,
    idp_metadata_xml TEXT NOT NULL,
    default_role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE saml_requests (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    relay_state TEXT,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX saml_requests_by_expiry ON saml_requests (expires_at);

CREATE TABLE saml_assertions (
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    assertion_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    CONSTRAINT saml_assertions_once PRIMARY KEY (org_id, assertion_id)
);
CREATE INDEX saml_assertions_by_expiry ON saml_assertions (expires_at);
