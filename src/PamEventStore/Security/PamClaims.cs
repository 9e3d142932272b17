namespace PamEventStore.Security;

/// <summary>The token claims this service reads. Every token must carry sub, org_id and actor_type.</summary>
public static class PamClaims
{
    public const string Subject = "sub";

    /// <summary>The organisation: the tenant everything the caller touches is stored under.</summary>
    public const string OrgId = "org_id";

    /// <summary><c>gateway</c>, <c>user</c> or <c>identity</c> (a machine identity).</summary>
    public const string ActorType = "actor_type";

    /// <summary>The gateway a gateway token speaks for; only that gateway's sessions accept its uploads.</summary>
    public const string GatewayId = "gateway_id";

    /// <summary>Space-separated scopes, see <see cref="PamScopes"/>.</summary>
    public const string Scope = "scope";

    /// <summary>Optional: space-separated project ids; when present the caller sees only those projects.</summary>
    public const string ProjectIds = "project_ids";

    public static readonly string[] ActorTypes = ["gateway", "user", "identity"];

    /// <summary>
    /// An org id the service takes: Wolverine trims the claim when it picks the tenant, while the caller's
    /// checks, keys and caches use it as it is, so one padded or holding control characters would be two orgs.
    /// </summary>
    public static bool IsUsableOrgId(string orgId) => orgId.Length > 0 && !orgId.Any(c => char.IsWhiteSpace(c) || char.IsControl(c));
}

public static class PamScopes
{
    public const string Create = "pam.sessions.create";
    public const string Read = "pam.sessions.read";
    public const string Terminate = "pam.sessions.terminate";
    public const string Audit = "pam.sessions.audit";

    public static readonly string[] All = [Create, Read, Terminate, Audit];
}

/// <summary>Authorization policy names, one per way of being allowed in.</summary>
public static class PamPolicies
{
    /// <summary>A gateway token (actor_type gateway with a gateway_id).</summary>
    public const string Gateway = "gateway";

    /// <summary>A gateway token, or a token with <see cref="PamScopes.Create"/>.</summary>
    public const string GatewayOrCreate = "gateway-or-create";

    public const string Create = PamScopes.Create;
    public const string Read = PamScopes.Read;
}
