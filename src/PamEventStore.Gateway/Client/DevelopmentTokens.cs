using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace PamEventStore.Gateway.Client;

/// <summary>
/// Mints the tokens a development or benchmark service accepts, from its HS256 signing key (the one
/// `dotnet run --project src/PamEventStore` keeps in .pamstore/token-signing.key). Real gateways get
/// their token from the platform.
/// </summary>
public sealed class DevelopmentTokens(byte[] signingKey, string issuer = "pam-event-store", string audience = "pam-event-store")
{
    public static DevelopmentTokens FromBase64(string key, string issuer = "pam-event-store", string audience = "pam-event-store") =>
        new(Convert.FromBase64String(key.Trim()), issuer, audience);

    public string Gateway(string orgId, string gatewayId) =>
        Issue(new() { ["sub"] = $"gateway:{gatewayId}", ["org_id"] = orgId, ["actor_type"] = "gateway", ["gateway_id"] = gatewayId });

    /// <summary>A platform (machine identity) token that may create and read sessions.</summary>
    public string Platform(string orgId) =>
        Issue(new() { ["sub"] = "platform", ["org_id"] = orgId, ["actor_type"] = "identity", ["scope"] = "pam.sessions.create pam.sessions.read" });

    private string Issue(Dictionary<string, object> claims) =>
        new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Audience = audience,
            Claims = claims,
            Expires = DateTime.UtcNow.AddHours(12),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(signingKey), SecurityAlgorithms.HmacSha256),
        });
}
