-- Tenant reads in one statement, like the credential functions of migration 0014.
--
-- A tenant read otherwise costs three round trips after authentication: `BEGIN` with the
-- tenant settings, the read, and `COMMIT`. These functions set `app.org_id` and `app.user_id`
-- for their own statement (`set_config(..., true)` in the statement's implicit transaction) and
-- read in the same call, under the same row-level security policies: they are SECURITY INVOKER,
-- so they see exactly what a tenant transaction of the caller would, and nothing once the
-- statement ends. `meridian_db::Db::tenant_select` calls them outside any transaction with the
-- tenant of verified credentials; the SQLite store functions run the same SELECTs directly.

-- A page of the organization's members by name (`orgs::store::list_members`).
CREATE FUNCTION tenant_members(org text, member text, after_name text, after_id text,
                               page_size bigint)
RETURNS TABLE (user_id text, email text, name text, role text, disabled boolean,
               created_at timestamptz, name_key text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('app.org_id', org, true), set_config('app.user_id', member, true);
    RETURN QUERY
        SELECT m.user_id, u.email, u.name, m.role, m.disabled, m.created_at, lower(u.name)
        FROM memberships m JOIN users u ON u.id = m.user_id
        WHERE m.org_id = org
          AND (after_name IS NULL OR lower(u.name) > after_name
               OR (lower(u.name) = after_name AND m.user_id > after_id))
        ORDER BY lower(u.name), m.user_id
        LIMIT page_size;
END
$$;
