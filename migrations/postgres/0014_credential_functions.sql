-- Authenticating a request in one statement.
--
-- A credential row is visible to the app role only while `app.token_hash` holds its hash (the
-- row-level security policies of migration 0001). Setting it took a transaction of its own:
-- `BEGIN; SELECT set_config(...)`, the lookup, then the rollback — two round trips for every API
-- request before its real work. These functions set the hash for their own statement
-- (`set_config(..., true)` in the statement's implicit transaction) and read the row in the same
-- call, still under the policies: they are SECURITY INVOKER like any function, so they see
-- exactly what the caller would see with the hash set, and nothing once the statement ends.
-- `meridian_db::Db::find_credential` calls them outside any transaction; the SQLite store
-- functions run the same SELECTs directly.

CREATE FUNCTION credential_access_token(token text)
RETURNS TABLE (org_id text, family_id text, user_id text, expires_at timestamptz, role text,
               email text, name text, org_name text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('app.token_hash', token, true);
    RETURN QUERY
        SELECT t.org_id, t.family_id, t.user_id, t.expires_at, t.role, u.email, u.name, o.name
        FROM access_tokens t
        JOIN users u ON u.id = t.user_id JOIN organizations o ON o.id = t.org_id
        WHERE t.token_hash = token;
END
$$;

CREATE FUNCTION credential_session(token text)
RETURNS TABLE (org_id text, id text, user_id text, last_seen_at timestamptz,
               absolute_expires_at timestamptz, role text, email text, name text, org_name text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('app.token_hash', token, true);
    RETURN QUERY
        SELECT s.org_id, s.id, s.user_id, s.last_seen_at, s.absolute_expires_at, s.role,
               u.email, u.name, o.name
        FROM sessions s
        JOIN users u ON u.id = s.user_id JOIN organizations o ON o.id = s.org_id
        WHERE s.token_hash = token;
END
$$;

CREATE FUNCTION credential_api_key(token text)
RETURNS TABLE (org_id text, id text, name text, role text, expires_at timestamptz,
               revoked_at timestamptz, last_used_at timestamptz, org_name text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('app.token_hash', token, true);
    RETURN QUERY
        SELECT k.org_id, k.id, k.name, k.role, k.expires_at, k.revoked_at, k.last_used_at, o.name
        FROM api_keys k JOIN organizations o ON o.id = k.org_id
        WHERE k.token_hash = token;
END
$$;
