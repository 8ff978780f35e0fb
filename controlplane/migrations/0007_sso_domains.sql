-- SSO takeover fixes (src/sso): the email domains an organization proved it owns (its IdP may
-- assert identities only there), accounts their owners linked to an organization's IdP, the
-- account a link-flow AuthnRequest is for, and the organization a session is scoped to (a
-- session opened by SSO works in that organization only; NULL: an ordinary session).
CREATE TABLE sso_domains (
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    domain TEXT NOT NULL,
    token TEXT NOT NULL,
    verified_at BIGINT,
    verified_by TEXT,
    created_at BIGINT NOT NULL,
    CONSTRAINT sso_domains_once PRIMARY KEY (org_id, domain)
);
-- A domain is verified for at most one organization.
CREATE UNIQUE INDEX sso_domains_verified_once ON sso_domains (domain) WHERE verified_at IS NOT NULL;

CREATE TABLE sso_links (
    org_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT sso_links_one_per_user PRIMARY KEY (org_id, user_id),
    CONSTRAINT sso_links_one_per_name_id UNIQUE (org_id, name_id)
);

ALTER TABLE saml_requests ADD COLUMN link_user_id TEXT;
ALTER TABLE refresh_tokens ADD COLUMN org_id TEXT;
