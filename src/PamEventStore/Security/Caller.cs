using System.Security.Claims;
using PamEventStore.Http;
using PamEventStore.Sessions;

namespace PamEventStore.Security;

/// <summary>
/// Who is calling, read once from the validated token. <see cref="ProjectIds"/> null means every
/// project of the org; an empty set means none (a token that lists no projects). Token validation has already refused tokens
/// without sub, org_id or a known actor_type, so a Caller always has them.
/// </summary>
public sealed record Caller(
    string OrgId,
    string Subject,
    string ActorType,
    string? GatewayId,
    IReadOnlySet<string> Scopes,
    IReadOnlySet<string>? ProjectIds,
    string RequestId)
{
    public static Caller From(HttpContext context)
    {
        var user = context.User;
        string Required(string claim) =>
            user.FindFirstValue(claim) is { Length: > 0 } value
                ? value
                : throw new InvalidOperationException($"An authenticated caller without '{claim}' reached an endpoint; token validation must refuse it.");

        var projects = user.FindAll(PamClaims.ProjectIds).ToList();
        return new Caller(
            Required(PamClaims.OrgId),
            Required(PamClaims.Subject),
            Required(PamClaims.ActorType),
            user.FindFirstValue(PamClaims.GatewayId),
            SplitScopes(user),
            projects.Count == 0 ? null : ValuesOf(projects),
            context.Request.Headers["X-Request-Id"].FirstOrDefault() is { Length: > 0 and <= 128 } id && !PlainText.HasControlCharacter(id) ? id : TraceId(context));
    }

    /// <summary>
    /// The request's W3C trace id, as its problem answers (<c>traceId</c>) and its log lines carry it, so
    /// an audit record, an error and the logs of one request are found by one id.
    /// </summary>
    public static string TraceId(HttpContext context) => System.Diagnostics.Activity.Current?.Id ?? context.TraceIdentifier;

    /// <summary>Scopes, one claim each: a space-separated string was split when the token was validated, an array's entries are kept whole.</summary>
    public static IReadOnlySet<string> SplitScopes(ClaimsPrincipal user) => ValuesOf(user.FindAll(PamClaims.Scope));

    // The empty claim that stands for an empty list of projects is no value.
    private static HashSet<string> ValuesOf(IEnumerable<Claim> claims) =>
        claims.Select(c => c.Value).Where(v => v.Length > 0).ToHashSet(StringComparer.Ordinal);

    public bool IsGateway => ActorType == "gateway" && GatewayId is not null;

    /// <summary>Only the gateway a session was opened through may write its recording; a session without one accepts none.</summary>
    public bool IsGatewayOf(PamSession session) => IsGateway && session.GatewayId is not null && session.GatewayId == GatewayId;

    public bool HasScope(string scope) => Scopes.Contains(scope);

    public bool CanSeeProject(string projectId) => ProjectIds is null || ProjectIds.Contains(projectId);

    public Actor AsActor() => new(ActorType, Subject, GatewayId, RequestId);
}
