using System.Security.Claims;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace PamEventStore.Security;

/// <summary>What a token says about its bearer.</summary>
public sealed record TokenClaims(
    string OrgId,
    string Subject,
    string ActorType,
    string? GatewayId = null,
    IReadOnlyCollection<string>? Scopes = null,
    IReadOnlyCollection<string>? ProjectIds = null)
{
    public static TokenClaims ForGateway(string orgId, string gatewayId) =>
        new(orgId, $"gateway:{gatewayId}", "gateway", gatewayId);

    public static TokenClaims ForUser(string orgId, string userId, params string[] scopes) =>
        new(orgId, userId, "user", Scopes: scopes);
}

/// <summary>
/// Signs HS256 tokens with the service's own key: for development, tests and platforms that share a
/// secret with this service. Production deployments behind an OIDC issuer get their tokens there.
/// </summary>
public static class DevelopmentTokens
{
    public static string Issue(TokenClaims claims, AuthOptions options, SecurityKey signingKey, TimeSpan lifetime, DateTimeOffset now) =>
        Issue(claims, options, new SigningCredentials(signingKey, SecurityAlgorithms.HmacSha256), lifetime, now);

    /// <param name="credentials">Any key and algorithm: tests sign as an OIDC issuer would (RS256).</param>
    public static string Issue(TokenClaims claims, AuthOptions options, SigningCredentials credentials, TimeSpan lifetime, DateTimeOffset now)
    {
        var values = new Dictionary<string, object>
        {
            [PamClaims.Subject] = claims.Subject,
            [PamClaims.OrgId] = claims.OrgId,
            [PamClaims.ActorType] = claims.ActorType,
            [JwtRegisteredClaimNames.Jti] = Guid.NewGuid().ToString("N"),
        };
        if (claims.GatewayId is not null) values[PamClaims.GatewayId] = claims.GatewayId;
        if (claims.Scopes is { Count: > 0 }) values[PamClaims.Scope] = string.Join(' ', claims.Scopes);
        if (claims.ProjectIds is not null) values[PamClaims.ProjectIds] = string.Join(' ', claims.ProjectIds);

        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = options.Issuer,
            Audience = options.Audience,
            Claims = values,
            IssuedAt = now.UtcDateTime,
            NotBefore = now.UtcDateTime,
            Expires = (now + lifetime).UtcDateTime,
            SigningCredentials = credentials,
        });
    }
}
